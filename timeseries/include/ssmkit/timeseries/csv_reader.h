// CSV reader for time series as users have them: a header row, one date/time column (named, or the
// first column whose cells parse as dates; formats in datetime.h), every other column numeric.
// Separator detected among ',', ';' and tab (quoted fields may hold separators, quotes as ""); CRLF
// and a UTF-8 BOM accepted; with ';' or tab, a decimal comma ("1,5") reads as 1.5. Missing cells
// (empty, NA, N/A, NaN, null, None) are an error unless a fill method is given. Every error is one
// line "<file>:<line>:<column>: <problem>; expected ... (hint)" (docs/conventions.md).
// Not here: files without a header, text columns (drop them first), gzip.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ssmkit/timeseries/datetime.h"

namespace ssmkit::timeseries {

enum class FillMethod : uint8_t {
  None,    // a missing cell is an error naming file, line and column
  Ffill,   // the previous value in the column; leading gaps take the first value (backfill)
  Linear,  // linear in row position between the neighbours; leading/trailing gaps take the nearest value
};
FillMethod parse_fill_method(const std::string& name);  // "none", "ffill", "linear"; throws otherwise

struct CsvOptions {
  char separator = 0;         // 0: detect among ',', ';', '\t'
  std::string date_col;       // "": the first column whose cells parse as dates (or Unix seconds, see below)
  bool day_first = true;      // DD/MM/YYYY when a whole column is ambiguous (every field <= 12)
  FillMethod fill = FillMethod::None;
  bool strict_time = true;    // duplicated or decreasing timestamps are an error; false keeps file order
                              // (the Time-Series-Library never checks: weather.csv repeats one row)
};

// A parsed file. Rows in file order; columns = every column but the date one, in file order.
struct CsvTable {
  std::string path;                 // as given, for messages
  char separator = ',';
  std::string date_name;            // header of the date column
  DateFormat date_format;           // how its cells are written (to write continued dates alike)
  std::vector<std::string> columns;  // (C) numeric column names
  std::vector<Micros> times;        // (T)
  std::vector<double> values;       // (T, C) row-major
  std::vector<int64_t> lines;       // (T) 1-based line of each row in the file (header = line 1)
  int64_t n_filled = 0;             // cells filled by FillMethod::Ffill / Linear

  int64_t rows() const { return static_cast<int64_t>(times.size()); }
  int64_t cols() const { return static_cast<int64_t>(columns.size()); }
  double at(int64_t r, int64_t c) const { return values[static_cast<size_t>(r * cols() + c)]; }
  // Index of a column by name; throws Error naming the file and the columns it has.
  int64_t column_index(const std::string& name) const;
};

// Reads and parses `path`. Throws core::Error on any defect (see the header comment).
CsvTable read_csv(const std::string& path, const CsvOptions& options = {});

// Parses text already in memory; `name` stands for the file in messages (and CsvTable::path).
// Unix seconds are detected only for a column named by date_col or whose header is one of
// timestamp, unix, epoch, unix_time, unixtime, time (any case) whose cells are numbers.
CsvTable parse_csv(std::string_view text, const std::string& name, const CsvOptions& options = {});

}  // namespace ssmkit::timeseries
