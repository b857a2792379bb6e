// CSV reader: tokenizer (RFC 4180 quoting, CRLF, BOM, blank lines skipped), separator detection,
// date-column detection and parsing (datetime.h), numeric cells with missing-value handling and the
// ffill / linear fills, timestamp order checks. Cells are kept as string views into the text (quoted
// cells with "" escapes get their own string) and converted column by column after the header is known.
// Messages follow docs/conventions.md: "<file>:<line>:<column>: <problem>; expected ... (hint)".
#include "ssmkit/timeseries/csv_reader.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <deque>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "ssmkit/core/error.h"

namespace ssmkit::timeseries {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string o(s);
  for (char& c : o) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return o;
}

bool is_missing(std::string_view s) {
  if (s.empty()) return true;
  if (s.size() > 5 || (s[0] >= '0' && s[0] <= '9') || s[0] == '.' || s[0] == '+') return false;  // a number
  char l[5];
  for (size_t i = 0; i < s.size(); ++i) l[i] = static_cast<char>(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
  std::string_view v(l, s.size());
  return v == "na" || v == "n/a" || v == "nan" || v == "-nan" || v == "null" || v == "none" || v == "#n/a" ||
         v == "<na>";
}

// A finite or non-finite double from the whole of s ('+' allowed; decimal comma when allowed).
bool parse_number(std::string_view s, bool decimal_comma, double* out) {
  s = trim(s);
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  if (r.ec == std::errc() && r.ptr == s.data() + s.size()) return true;
  if (r.ec == std::errc::result_out_of_range && r.ptr == s.data() + s.size()) {
    *out = std::numeric_limits<double>::infinity();  // reported as not finite by the caller
    return true;
  }
  if (decimal_comma && s.find('.') == std::string_view::npos && s.find(',') != std::string_view::npos &&
      s.find(',') == s.rfind(',')) {
    std::string t(s);
    t[t.find(',')] = '.';
    return parse_number(t, false, out);
  }
  return false;
}

std::string sep_name(char c) { return c == '\t' ? "tab" : std::string("'") + c + "'"; }

std::string quoted_list(const std::vector<std::string>& names) {
  std::string o;
  for (size_t i = 0; i < names.size(); ++i) o += (i ? ", '" : "'") + names[i] + "'";
  return o;
}

// Records of a file: cells row-major as views (into the text or into `owned`), with the line each
// record starts on.
struct Records {
  std::vector<std::string_view> cells;
  std::vector<size_t> begin;        // first cell of each record (plus one past the last)
  std::vector<int64_t> lines;       // 1-based line of each record
  std::deque<std::string> owned;    // unescaped quoted cells (stable addresses)
  size_t size() const { return lines.size(); }
  size_t n_fields(size_t r) const { return begin[r + 1] - begin[r]; }
  std::string_view at(size_t r, size_t c) const { return cells[begin[r] + c]; }
};

Records tokenize(std::string_view text, char sep, const std::string& name) {
  Records rec;
  size_t i = 0, n = text.size();
  int64_t line = 1;
  rec.begin.push_back(0);
  while (i < n) {
    int64_t rec_line = line;
    size_t first = rec.cells.size();
    while (true) {
      size_t j = i;
      while (j < n && text[j] == ' ') ++j;
      if (j < n && text[j] == '"') {
        // Quoted: up to the closing quote; "" is one quote; separators and newlines are text.
        size_t k = j + 1;
        bool escaped = false;
        while (true) {
          SSMKIT_CHECK(k < n, name, ":", rec_line, ": unterminated quoted field; expected a closing '\"'");
          if (text[k] == '"') {
            if (k + 1 < n && text[k + 1] == '"') {
              escaped = true;
              k += 2;
              continue;
            }
            break;
          }
          if (text[k] == '\n') ++line;
          ++k;
        }
        std::string_view body = text.substr(j + 1, k - j - 1);
        if (escaped) {
          std::string u;
          for (size_t q = 0; q < body.size(); ++q) {
            u += body[q];
            if (body[q] == '"') ++q;  // skip the second quote of ""
          }
          rec.owned.push_back(std::move(u));
          body = rec.owned.back();
        }
        rec.cells.push_back(trim(body));
        j = k + 1;
        while (j < n && text[j] == ' ') ++j;
        SSMKIT_CHECK(j >= n || text[j] == sep || text[j] == '\n' || text[j] == '\r', name, ":", line,
                     ": text after a closing quote; expected the separator ", sep_name(sep), " or the end of the line");
      } else {
        j = i;
        while (j < n && text[j] != sep && text[j] != '\n' && text[j] != '\r') ++j;
        rec.cells.push_back(trim(text.substr(i, j - i)));
      }
      if (j < n && text[j] == sep) {
        i = j + 1;
        if (i < n) continue;
        rec.cells.push_back(std::string_view());  // "a,b," at the very end of the text
        j = n;
      }
      // end of the record
      if (j < n && text[j] == '\r') ++j;
      if (j < n && text[j] == '\n') ++j;
      ++line;
      i = j;
      break;
    }
    if (rec.cells.size() == first + 1 && rec.cells.back().empty()) {
      rec.cells.pop_back();  // blank line
      continue;
    }
    rec.lines.push_back(rec_line);
    rec.begin.push_back(rec.cells.size());
  }
  return rec;
}

// Occurrences of c outside double quotes in the first `max_lines` lines (each count separately).
std::vector<int64_t> count_per_line(std::string_view text, char c, int max_lines) {
  std::vector<int64_t> counts;
  int64_t count = 0;
  bool in_quotes = false, any = false;
  for (size_t i = 0; i < text.size() && static_cast<int>(counts.size()) < max_lines; ++i) {
    char ch = text[i];
    if (ch == '"') in_quotes = !in_quotes;
    if (!in_quotes && ch == c) ++count;
    if (!in_quotes && ch == '\n') {
      if (any) counts.push_back(count);
      count = 0;
      any = false;
      continue;
    }
    if (ch != '\r' && ch != '\n') any = true;
  }
  if (any && static_cast<int>(counts.size()) < max_lines) counts.push_back(count);
  return counts;
}

char detect_separator(std::string_view text, const std::string& name) {
  char best = 0;
  int64_t best_count = 0;
  bool best_consistent = false;
  for (char c : {',', ';', '\t'}) {
    std::vector<int64_t> counts = count_per_line(text, c, 6);
    if (counts.empty() || counts[0] == 0) continue;
    bool consistent = true;
    for (int64_t k : counts) consistent = consistent && k == counts[0];
    if ((consistent && !best_consistent) || (consistent == best_consistent && counts[0] > best_count)) {
      best = c;
      best_count = counts[0];
      best_consistent = consistent;
    }
  }
  SSMKIT_CHECK(best != 0, name, ":1: no separator in the header; expected a date column and value columns ",
               "separated by ',', ';' or tab");
  return best;
}

bool unix_like_header(const std::string& h) {
  std::string l = lower(h);
  return l == "timestamp" || l == "unix" || l == "epoch" || l == "unix_time" || l == "unixtime" || l == "time";
}

}  // namespace

FillMethod parse_fill_method(const std::string& name) {
  if (name == "none" || name.empty()) return FillMethod::None;
  if (name == "ffill") return FillMethod::Ffill;
  if (name == "linear") return FillMethod::Linear;
  SSMKIT_CHECK(false, "fill method '", name, "': unknown; expected none, ffill or linear");
  return FillMethod::None;
}

int64_t CsvTable::column_index(const std::string& name) const {
  for (size_t c = 0; c < columns.size(); ++c)
    if (columns[c] == name) return static_cast<int64_t>(c);
  SSMKIT_CHECK(false, path, ": no column '", name, "'; expected one of ", quoted_list(columns),
               name == date_name ? " (that is the date column)" : "");
  return -1;
}

CsvTable read_csv(const std::string& path, const CsvOptions& options) {
  std::ifstream in(path, std::ios::binary);
  SSMKIT_CHECK(in.good(), path, ": cannot open (", std::strerror(errno), "); expected a readable CSV file");
  std::ostringstream ss;
  ss << in.rdbuf();
  SSMKIT_CHECK(!in.bad(), path, ": read error; expected a readable CSV file");
  std::string text = ss.str();
  return parse_csv(text, path, options);
}

CsvTable parse_csv(std::string_view text, const std::string& name, const CsvOptions& opt) {
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // UTF-8 BOM
  SSMKIT_CHECK(text.find_first_not_of(" \t\r\n") != std::string_view::npos, name,
               ": empty file; expected a header row and data rows");
  CsvTable t;
  t.path = name;
  t.separator = opt.separator ? opt.separator : detect_separator(text, name);
  SSMKIT_CHECK(t.separator != '"' && t.separator != '\n' && t.separator != '\r', name, ": separator ",
               sep_name(t.separator), " cannot be used; expected ',', ';' or tab");
  Records rec = tokenize(text, t.separator, name);

  // Header.
  size_t n_cols = rec.n_fields(0);
  std::vector<std::string> header;
  for (size_t c = 0; c < n_cols; ++c) {
    std::string h(rec.at(0, c));
    header.push_back(h.empty() ? "Unnamed: " + std::to_string(c) : h);
  }
  SSMKIT_CHECK(rec.size() >= 2, name, ": no data rows; expected rows of values after the header");
  // A trailing separator on every line gives an unnamed, empty last column: drop it.
  bool trailing = rec.at(0, n_cols - 1).empty();
  for (size_t r = 1; r < rec.size() && trailing; ++r)
    trailing = rec.n_fields(r) == n_cols && rec.at(r, n_cols - 1).empty();
  size_t used = trailing ? n_cols - 1 : n_cols;
  if (trailing) header.pop_back();
  SSMKIT_CHECK(used >= 2, name, ":1: ", used, " column(s) with separator ", sep_name(t.separator),
               "; expected a date column and at least one value column");
  for (size_t a = 0; a < used; ++a)
    for (size_t b = a + 1; b < used; ++b)
      SSMKIT_CHECK(header[a] != header[b], name, ":1: column name '", header[a], "' appears twice; expected unique names");
  {
    bool looks_like_data = true;
    for (size_t c = 0; c < used && looks_like_data; ++c) {
      double v = 0;
      looks_like_data = parse_number(rec.at(0, c), false, &v) || parse_datetime(rec.at(0, c)).has_value();
    }
    SSMKIT_CHECK(!looks_like_data, name, ":1: the first row looks like data ('", rec.at(0, 0),
                 "', ...); expected a header row with column names (add one)");
  }
  size_t n_rows = rec.size() - 1;
  for (size_t r = 1; r <= n_rows; ++r)
    SSMKIT_CHECK(rec.n_fields(r) == n_cols, name, ":", rec.lines[r], ": ", rec.n_fields(r), " fields; expected ",
                 n_cols, " as in the header (quote fields that contain the separator ", sep_name(t.separator), ")");
  t.lines.resize(n_rows);
  for (size_t r = 0; r < n_rows; ++r) t.lines[r] = rec.lines[r + 1];

  // The cells of column c; with skip_missing, at most `limit` non-missing ones (a detection sample).
  auto column_cells = [&](size_t c, size_t limit, bool skip_missing) {
    std::vector<std::string_view> cells;
    for (size_t r = 1; r <= n_rows && cells.size() < limit; ++r)
      if (!skip_missing || !is_missing(rec.at(r, c))) cells.push_back(rec.at(r, c));
    return cells;
  };

  // Date column: named, or the first whose leading cells parse as dates, or a Unix-seconds header.
  size_t date_c = used;
  bool unix_dates = false;
  if (!opt.date_col.empty()) {
    for (size_t c = 0; c < used; ++c)
      if (header[c] == opt.date_col) date_c = c;
    SSMKIT_CHECK(date_c < used, name, ": no column named '", opt.date_col, "' (the date column asked for); expected one of ",
                 quoted_list(header));
    std::vector<Micros> tt;
    DateFormat f;
    int64_t bad = 0;
    std::string why;
    std::vector<std::string_view> head = column_cells(date_c, 1, true);
    unix_dates = !parse_date_column(head, opt.day_first, &tt, &f, &bad, &why) &&
                 parse_unix_column(head, &tt, &f, &bad, &why);
  } else {
    // The first column whose first non-missing cell is a date (the whole column is checked below, so a
    // bad cell further down is reported rather than hiding the column); then a Unix-seconds header.
    const size_t kSample = 20;
    for (size_t c = 0; c < used && date_c == used; ++c) {
      std::vector<std::string_view> head = column_cells(c, 1, true);
      if (!head.empty() && parse_datetime(head[0], opt.day_first).has_value()) date_c = c;
    }
    for (size_t c = 0; c < used && date_c == used; ++c) {
      std::vector<Micros> tt;
      DateFormat f;
      int64_t bad = 0;
      std::string why;
      if (unix_like_header(header[c]) && parse_unix_column(column_cells(c, kSample, true), &tt, &f, &bad, &why)) {
        date_c = c;
        unix_dates = true;
      }
    }
    SSMKIT_CHECK(date_c < used, name, ": no date/time column found among ", quoted_list(header),
                 "; expected a column of dates such as 2016-07-01 00:00:00 (name it with --date-col)");
  }
  t.date_name = header[date_c];
  {
    std::vector<std::string_view> cells = column_cells(date_c, n_rows, false);
    for (size_t r = 0; r < n_rows; ++r)
      SSMKIT_CHECK(!is_missing(cells[r]), name, ":", t.lines[r], ":", t.date_name, ": missing timestamp '", cells[r],
                   "'; expected a date on every row (dates cannot be filled)");
    int64_t bad = 0;
    std::string why;
    bool ok = unix_dates ? parse_unix_column(cells, &t.times, &t.date_format, &bad, &why)
                         : parse_date_column(cells, opt.day_first, &t.times, &t.date_format, &bad, &why);
    SSMKIT_CHECK(ok, name, ":", t.lines[static_cast<size_t>(bad)], ":", t.date_name, ": ", why,
                 "; expected dates written like the first row ('", cells[0], "')");
  }

  // Value columns.
  for (size_t c = 0; c < used; ++c)
    if (c != date_c) t.columns.push_back(header[c]);
  const size_t nc = t.columns.size();
  t.values.resize(n_rows * nc);
  const bool decimal_comma = t.separator != ',';
  const double kNaN = std::numeric_limits<double>::quiet_NaN();
  std::vector<int64_t> missing(nc, 0);
  for (size_t r = 0; r < n_rows; ++r) {
    size_t j = 0;
    for (size_t c = 0; c < used; ++c) {
      if (c == date_c) continue;
      std::string_view s = rec.at(r + 1, c);
      double v = 0;
      if (is_missing(s)) {
        SSMKIT_CHECK(opt.fill != FillMethod::None, name, ":", t.lines[r], ":", header[c],
                     s.empty() ? std::string(": empty cell") : ": missing value '" + std::string(s) + "'",
                     "; expected a number (use --fill ffill or --fill linear)");
        v = kNaN;
        ++missing[j];
      } else {
        SSMKIT_CHECK(parse_number(s, decimal_comma, &v), name, ":", t.lines[r], ":", header[c], ": cannot read '", s,
                     "' as a number; expected a decimal number (a text column? remove it, or name the date column ",
                     "with --date-col)");
        SSMKIT_CHECK(std::isfinite(v), name, ":", t.lines[r], ":", header[c], ": '", s,
                     "' is not finite; expected a finite number");
      }
      t.values[r * nc + j] = v;
      ++j;
    }
  }

  // Timestamp order.
  if (opt.strict_time) {
    for (size_t r = 1; r < n_rows; ++r) {
      SSMKIT_CHECK(t.times[r] != t.times[r - 1], name, ":", t.lines[r], ":", t.date_name, ": duplicated timestamp ",
                   format_datetime(t.times[r], t.date_format), " (also on line ", t.lines[r - 1],
                   "); expected strictly increasing times (remove the repeated row, or set strict_time = false to ",
                   "keep file order as the Time-Series-Library does)");
      SSMKIT_CHECK(t.times[r] > t.times[r - 1], name, ":", t.lines[r], ":", t.date_name, ": timestamp ",
                   format_datetime(t.times[r], t.date_format), " comes before ",
                   format_datetime(t.times[r - 1], t.date_format), " on line ", t.lines[r - 1],
                   "; expected rows sorted by time (sort the file, or set strict_time = false to keep file order)");
    }
  }

  // Fills.
  for (size_t c = 0; c < nc; ++c) {
    if (missing[c] == 0) continue;
    auto v = [&](size_t r) -> double& { return t.values[r * nc + c]; };
    size_t first = n_rows, last = 0;
    for (size_t r = 0; r < n_rows; ++r)
      if (!std::isnan(v(r))) {
        if (first == n_rows) first = r;
        last = r;
      }
    SSMKIT_CHECK(first < n_rows, name, ": column '", t.columns[c], "' has no values (every cell is missing); ",
                 "expected at least one number to fill from (remove the column)");
    for (size_t r = 0; r < first; ++r) v(r) = v(first);  // leading gap: backfill
    for (size_t r = last + 1; r < n_rows; ++r) v(r) = v(last);  // trailing gap: last value
    size_t prev = first;
    for (size_t r = first + 1; r <= last; ++r) {
      if (std::isnan(v(r))) continue;
      for (size_t q = prev + 1; q < r; ++q) {
        if (opt.fill == FillMethod::Ffill) {
          v(q) = v(prev);
        } else {
          double w = static_cast<double>(q - prev) / static_cast<double>(r - prev);
          v(q) = v(prev) + (v(r) - v(prev)) * w;
        }
      }
      prev = r;
    }
    t.n_filled += missing[c];
  }
  return t;
}

}  // namespace ssmkit::timeseries
