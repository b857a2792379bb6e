// Calendar arithmetic and the date/time formats of the CSV reader: timestamps are microseconds since
// 1970-01-01 of the wall clock written in the file (no time-zone conversion; a 'Z' or "+02:00" suffix is
// kept verbatim and must be the same on every row). Formats: ISO 8601 (date, 'T' or ' ' before the
// time, optional seconds and fraction), YYYY/MM/DD, DD/MM/YYYY (or MM/DD/YYYY), '-', '/' or '.' between
// the date fields, unpadded fields (1990/1/1 0:00), and Unix seconds. Not here: AM/PM, two-digit years,
// month names. Civil-day conversion follows the proleptic Gregorian calendar (as pandas/numpy do).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ssmkit::timeseries {

using Micros = int64_t;  // microseconds since 1970-01-01 00:00:00 (wall clock of the file)
constexpr int64_t kMicrosPerSecond = 1000000;
constexpr int64_t kMicrosPerDay = 86400 * kMicrosPerSecond;

// ---------------------------------------------------------------------------------------------------
// Civil calendar

struct CivilTime {
  int year = 1970, month = 1, day = 1;       // month 1..12, day 1..31
  int hour = 0, minute = 0, second = 0;      // 0..23, 0..59, 0..59
  int micro = 0;                             // 0..999999
};

bool is_leap_year(int year);
int days_in_month(int year, int month);                 // month 1..12
int64_t days_from_civil(int year, int month, int day);  // days since 1970-01-01 (negative before)
Micros micros_from_civil(const CivilTime& c);
CivilTime civil_from_micros(Micros t);
int day_of_week(Micros t);  // Monday 0 .. Sunday 6 (pandas dayofweek, Python weekday())
int day_of_year(Micros t);  // 1..366
int iso_week(Micros t);     // ISO 8601 week number 1..53 (pandas isocalendar().week)

// ---------------------------------------------------------------------------------------------------
// Formats

enum class DateOrder : uint8_t { YMD, DMY, MDY, Unix };

// How a date column is written; detected from the column, used again to write continued dates.
struct DateFormat {
  DateOrder order = DateOrder::YMD;
  char date_sep = '-';      // '-', '/' or '.' between year, month and day
  bool pad = true;          // month and day written with two digits
  bool has_time = false;    // a time of day follows the date
  char time_sep = ' ';      // ' ' or 'T' before the time
  bool pad_hour = true;     // hour written with two digits
  bool has_seconds = false;
  int frac_digits = 0;      // digits after the seconds' decimal point (0..6 kept)
  std::string zone;         // "", "Z" or an offset such as "+02:00", verbatim

  std::string describe() const;  // e.g. "YYYY-MM-DD hh:mm:ss", "D/M/YYYY h:mm", "unix seconds"
};

// Parses a column of date cells (all must share one format). Returns true and fills `times` (one per
// cell) and `format`; on failure returns false with `bad_index` (the cell at fault) and `why` (what is
// wrong with it). With the year last, the day/month order is decided over the whole column (a first
// field above 12 means DD/MM, a second one MM/DD); `day_first` settles a column where both are <= 12.
bool parse_date_column(const std::vector<std::string_view>& cells, bool day_first, std::vector<Micros>* times,
                       DateFormat* format, int64_t* bad_index, std::string* why);

// Parses a column of Unix seconds (integers or decimals). Same contract as parse_date_column.
bool parse_unix_column(const std::vector<std::string_view>& cells, std::vector<Micros>* times, DateFormat* format,
                       int64_t* bad_index, std::string* why);

// One cell, format detected from the cell alone (day_first for ambiguous slash dates).
std::optional<Micros> parse_datetime(std::string_view cell, bool day_first = true, DateFormat* format = nullptr);

// Writes t in the given format. Seconds / the time of day are added when t needs them even if the
// format has none (a 30-second step after minute-resolution input, say).
std::string format_datetime(Micros t, const DateFormat& format);

// ISO "YYYY-MM-DD hh:mm:ss" (the project's CSV output form; fraction added when t has one).
std::string format_iso(Micros t);

}  // namespace ssmkit::timeseries
