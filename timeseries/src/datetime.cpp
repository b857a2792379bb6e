// Calendar arithmetic (days <-> civil dates, weekday, day of year, ISO week) and the date-cell parser
// and writer of the CSV reader. A cell is first split into its numbers (three date fields, optional
// time, fraction and zone) without knowing their order; the column as a whole then decides the order
// (year first, or day/month with the year last) and the padding used to write continued dates.
// Civil conversion: the era-based proleptic Gregorian algorithm (H. Hinnant, "chrono-compatible
// low-level date algorithms"), written here from its description.
#include "ssmkit/timeseries/datetime.h"

#include <algorithm>

namespace ssmkit::timeseries {

namespace {

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }
int64_t floor_mod(int64_t a, int64_t b) { return a - floor_div(a, b) * b; }

bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Reads 1..max_w digits at s[*i]; false if there are none.
bool read_digits(std::string_view s, size_t* i, int max_w, int* value, int* width) {
  int v = 0, w = 0;
  while (*i < s.size() && w < max_w && is_digit(s[*i])) {
    v = v * 10 + (s[*i] - '0');
    ++*i;
    ++w;
  }
  *value = v;
  *width = w;
  return w > 0;
}

// One date cell split into its numbers, before the day/month order is known.
struct RawDate {
  int f[3] = {0, 0, 0};  // the three date fields as written
  int w[3] = {0, 0, 0};  // their digit counts
  char sep = '-';
  bool has_time = false;
  char time_sep = ' ';
  int hour = 0, minute = 0, second = 0, micro = 0;
  int w_hour = 2;
  bool has_seconds = false;
  int frac_digits = 0;
  std::string_view zone;
  bool year_first() const { return w[0] == 4; }
};

bool valid_zone(std::string_view z) {
  if (z.empty() || z == "Z") return true;
  if (z[0] != '+' && z[0] != '-') return false;
  z.remove_prefix(1);
  // HH, HHMM or HH:MM
  if (z.size() == 2) return is_digit(z[0]) && is_digit(z[1]);
  if (z.size() == 4) return is_digit(z[0]) && is_digit(z[1]) && is_digit(z[2]) && is_digit(z[3]);
  if (z.size() == 5) return is_digit(z[0]) && is_digit(z[1]) && z[2] == ':' && is_digit(z[3]) && is_digit(z[4]);
  return false;
}

// Splits one cell; false if it is not a date (the caller words the message).
bool split_cell(std::string_view cell, RawDate* r) {
  std::string_view s = trim(cell);
  size_t i = 0;
  if (!read_digits(s, &i, 4, &r->f[0], &r->w[0])) return false;
  if (i >= s.size() || (s[i] != '-' && s[i] != '/' && s[i] != '.')) return false;
  r->sep = s[i++];
  if (!read_digits(s, &i, 2, &r->f[1], &r->w[1])) return false;
  if (i >= s.size() || s[i] != r->sep) return false;
  ++i;
  if (!read_digits(s, &i, 4, &r->f[2], &r->w[2])) return false;
  bool year_first = r->w[0] == 4 && r->w[2] <= 2, year_last = r->w[0] <= 2 && r->w[2] == 4;
  if (!year_first && !year_last) return false;
  if (i == s.size()) return true;
  if (s[i] != ' ' && s[i] != 'T') return false;
  r->time_sep = s[i];
  while (i < s.size() && (s[i] == ' ' || s[i] == 'T')) ++i;
  int w = 0;
  if (!read_digits(s, &i, 2, &r->hour, &r->w_hour)) return false;
  if (i >= s.size() || s[i] != ':') return false;
  ++i;
  if (!read_digits(s, &i, 2, &r->minute, &w)) return false;
  r->has_time = true;
  if (i < s.size() && s[i] == ':') {
    ++i;
    if (!read_digits(s, &i, 2, &r->second, &w)) return false;
    r->has_seconds = true;
    if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
      ++i;
      int frac = 0;
      if (!read_digits(s, &i, 9, &frac, &r->frac_digits)) return false;
      int micro = frac, digits = r->frac_digits;
      for (; digits > 6; --digits) micro /= 10;
      for (; digits < 6; ++digits) micro *= 10;
      r->micro = micro;
    }
  }
  std::string_view rest = trim(s.substr(i));
  if (!valid_zone(rest)) return false;
  r->zone = rest;
  return true;
}

// v written with at least `width` digits (zero padded), '-' first when negative.
void put_int(std::string* out, int64_t v, int width) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  if (v < 0) *out += '-';
  if (static_cast<int>(digits.size()) < width) out->append(static_cast<size_t>(width) - digits.size(), '0');
  *out += digits;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Civil calendar

bool is_leap_year(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int y, int m) {
  static const int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap_year(y) ? 29 : kDays[m - 1];
}

int64_t days_from_civil(int year, int month, int day) {
  // Years start on March 1 so the leap day is the last day of the (shifted) year.
  int64_t y = year - (month <= 2 ? 1 : 0);
  int64_t era = floor_div(y, 400);
  int64_t year_of_era = y - era * 400;                                       // 0..399
  int64_t day_of_shifted_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;  // 0..365
  int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_shifted_year;
  return era * 146097 + day_of_era - 719468;  // 719468 = days from 0000-03-01 to 1970-01-01
}

CivilTime civil_from_micros(Micros t) {
  int64_t days = floor_div(t, kMicrosPerDay);
  int64_t in_day = t - days * kMicrosPerDay;
  int64_t z = days + 719468;
  int64_t era = floor_div(z, 146097);
  int64_t day_of_era = z - era * 146097;
  int64_t year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  int64_t day_of_shifted_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  int64_t mp = (5 * day_of_shifted_year + 2) / 153;
  CivilTime c;
  c.day = static_cast<int>(day_of_shifted_year - (153 * mp + 2) / 5 + 1);
  c.month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  c.year = static_cast<int>(year_of_era + era * 400 + (c.month <= 2 ? 1 : 0));
  int64_t secs = in_day / kMicrosPerSecond;
  c.micro = static_cast<int>(in_day % kMicrosPerSecond);
  c.hour = static_cast<int>(secs / 3600);
  c.minute = static_cast<int>(secs / 60 % 60);
  c.second = static_cast<int>(secs % 60);
  return c;
}

Micros micros_from_civil(const CivilTime& c) {
  return days_from_civil(c.year, c.month, c.day) * kMicrosPerDay +
         ((c.hour * 60 + c.minute) * 60 + c.second) * kMicrosPerSecond + c.micro;
}

int day_of_week(Micros t) { return static_cast<int>(floor_mod(floor_div(t, kMicrosPerDay) + 3, 7)); }

int day_of_year(Micros t) {
  CivilTime c = civil_from_micros(t);
  return static_cast<int>(floor_div(t, kMicrosPerDay) - days_from_civil(c.year, 1, 1) + 1);
}

int iso_week(Micros t) {
  CivilTime c = civil_from_micros(t);
  int weekday = day_of_week(t) + 1;  // ISO: Monday 1 .. Sunday 7
  int week = (day_of_year(t) - weekday + 10) / 7;
  auto weeks_in = [](int y) {
    int jan1 = static_cast<int>(floor_mod(days_from_civil(y, 1, 1) + 3, 7));  // Monday 0
    return (jan1 == 3 || (jan1 == 2 && is_leap_year(y))) ? 53 : 52;  // starts on Thursday (or Wed, leap)
  };
  if (week < 1) return weeks_in(c.year - 1);
  if (week > weeks_in(c.year)) return 1;
  return week;
}

// ---------------------------------------------------------------------------------------------------
// Formats

std::string DateFormat::describe() const {
  if (order == DateOrder::Unix) return frac_digits > 0 ? "unix seconds (with fraction)" : "unix seconds";
  std::string d = pad ? "DD" : "D", m = pad ? "MM" : "M", out;
  std::string s(1, date_sep);
  if (order == DateOrder::YMD) out = "YYYY" + s + m + s + d;
  if (order == DateOrder::DMY) out = d + s + m + s + "YYYY";
  if (order == DateOrder::MDY) out = m + s + d + s + "YYYY";
  if (has_time) {
    out += time_sep;
    out += pad_hour ? "hh:mm" : "h:mm";
    if (has_seconds) out += ":ss";
    if (frac_digits > 0) out += "." + std::string(static_cast<size_t>(frac_digits), 'f');
    out += zone;
  }
  return out;
}

bool parse_date_column(const std::vector<std::string_view>& cells, bool day_first, std::vector<Micros>* times,
                       DateFormat* format, int64_t* bad_index, std::string* why) {
  std::vector<RawDate> raw(cells.size());
  for (size_t i = 0; i < cells.size(); ++i) {
    if (!split_cell(cells[i], &raw[i])) {
      *why = "cannot read '" + std::string(cells[i]) + "' as a date";
      *bad_index = static_cast<int64_t>(i);
      return false;
    }
  }
  if (cells.empty()) {
    *bad_index = 0;
    *why = "no cells";
    return false;
  }
  DateFormat f;
  const RawDate& r0 = raw[0];
  f.date_sep = r0.sep;
  f.zone = std::string(r0.zone);
  f.pad = true;
  f.pad_hour = true;
  bool dmy = false, mdy = false;
  for (size_t i = 0; i < raw.size(); ++i) {
    const RawDate& r = raw[i];
    auto fail = [&](const std::string& what) {
      *bad_index = static_cast<int64_t>(i);
      *why = what;
      return false;
    };
    if (r.year_first() != r0.year_first() || r.sep != r0.sep)
      return fail("'" + std::string(cells[i]) + "' is written differently from the first row ('" +
                  std::string(cells[0]) + "')");
    if (r.zone != r0.zone)
      return fail("time zone '" + std::string(r.zone) + "' differs from the first row's '" + std::string(r0.zone) +
                  "' (mixed UTC offsets are not supported)");
    if (!r.year_first()) {
      if (r.f[0] > 12) dmy = true;
      if (r.f[1] > 12) mdy = true;
      if (dmy && mdy) return fail("'" + std::string(cells[i]) + "' contradicts the day/month order of earlier rows");
    }
    int mw = r.year_first() ? r.w[1] : r.w[0], dw = r.year_first() ? r.w[2] : r.w[1];
    if (mw < 2 || dw < 2) f.pad = false;
    if (r.has_time) {
      if (!f.has_time) f.time_sep = r.time_sep;
      f.has_time = true;
      if (r.w_hour < 2) f.pad_hour = false;
    }
    f.has_seconds = f.has_seconds || r.has_seconds;
    f.frac_digits = std::max(f.frac_digits, std::min(r.frac_digits, 6));
  }
  f.order = r0.year_first() ? DateOrder::YMD : dmy ? DateOrder::DMY : mdy ? DateOrder::MDY
                                                 : (day_first ? DateOrder::DMY : DateOrder::MDY);
  times->resize(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    const RawDate& r = raw[i];
    CivilTime c;
    if (f.order == DateOrder::YMD) c = {r.f[0], r.f[1], r.f[2], 0, 0, 0, 0};
    if (f.order == DateOrder::DMY) c = {r.f[2], r.f[1], r.f[0], 0, 0, 0, 0};
    if (f.order == DateOrder::MDY) c = {r.f[2], r.f[0], r.f[1], 0, 0, 0, 0};
    c.hour = r.hour;
    c.minute = r.minute;
    c.second = r.second;
    c.micro = r.micro;
    std::string what;
    if (c.month < 1 || c.month > 12)
      what = "month " + std::to_string(c.month) + " out of range";
    else if (c.day < 1 || c.day > days_in_month(c.year, c.month))
      what = "day " + std::to_string(c.day) + " out of range for " + std::to_string(c.year) + "-" +
             std::to_string(c.month);
    else if (c.hour > 23 || c.minute > 59 || c.second > 59)
      what = "time of day out of range";
    if (!what.empty()) {
      *bad_index = static_cast<int64_t>(i);
      *why = "'" + std::string(cells[i]) + "': " + what + " (read as " + f.describe() + ")";
      return false;
    }
    (*times)[i] = micros_from_civil(c);
  }
  *format = f;
  return true;
}

bool parse_unix_column(const std::vector<std::string_view>& cells, std::vector<Micros>* times, DateFormat* format,
                       int64_t* bad_index, std::string* why) {
  DateFormat f;
  f.order = DateOrder::Unix;
  times->resize(cells.size());
  for (size_t i = 0; i < cells.size(); ++i) {
    std::string_view s = trim(cells[i]);
    size_t k = 0;
    bool neg = !s.empty() && s[0] == '-';
    if (neg) ++k;
    int64_t secs = 0;
    int n_int = 0;
    while (k < s.size() && is_digit(s[k]) && n_int < 12) {
      secs = secs * 10 + (s[k++] - '0');
      ++n_int;
    }
    int64_t micro = 0;
    int n_frac = 0;
    if (k < s.size() && s[k] == '.') {
      ++k;
      while (k < s.size() && is_digit(s[k])) {
        if (n_frac < 6) micro = micro * 10 + (s[k] - '0');
        ++n_frac;
        ++k;
      }
      for (int d = std::min(n_frac, 6); d < 6; ++d) micro *= 10;
    }
    if (n_int == 0 || k != s.size()) {
      *bad_index = static_cast<int64_t>(i);
      *why = "cannot read '" + std::string(cells[i]) + "' as unix seconds";
      return false;
    }
    f.frac_digits = std::max(f.frac_digits, std::min(n_frac, 6));
    int64_t t = secs * kMicrosPerSecond + micro;
    (*times)[i] = neg ? -t : t;
  }
  *format = f;
  return true;
}

std::optional<Micros> parse_datetime(std::string_view cell, bool day_first, DateFormat* format) {
  std::vector<std::string_view> one{cell};
  std::vector<Micros> t;
  DateFormat f;
  int64_t bad = 0;
  std::string why;
  if (!parse_date_column(one, day_first, &t, &f, &bad, &why)) return std::nullopt;
  if (format) *format = f;
  return t[0];
}

std::string format_datetime(Micros t, const DateFormat& f) {
  std::string out;
  if (f.order == DateOrder::Unix) {
    int64_t secs = floor_div(t, kMicrosPerSecond), micro = t - secs * kMicrosPerSecond;
    out = std::to_string(secs);
    if (f.frac_digits > 0 || micro != 0) {
      int digits = f.frac_digits > 0 ? f.frac_digits : 6;
      int64_t v = micro;
      for (int d = 6; d > digits; --d) v /= 10;
      out += '.';
      put_int(&out, v, digits);
    }
    return out;
  }
  CivilTime c = civil_from_micros(t);
  int w = f.pad ? 2 : 1;
  // (value, width) of the three date fields in written order
  int v[3] = {c.year, c.month, c.day}, wd[3] = {4, w, w};
  if (f.order != DateOrder::YMD) {  // year last
    v[0] = f.order == DateOrder::DMY ? c.day : c.month;
    v[1] = f.order == DateOrder::DMY ? c.month : c.day;
    v[2] = c.year;
    wd[0] = w;
    wd[2] = 4;
  }
  for (int k = 0; k < 3; ++k) {
    if (k > 0) out += f.date_sep;
    put_int(&out, v[k], wd[k]);
  }
  bool need_seconds = f.has_seconds || c.second != 0 || c.micro != 0;
  bool need_time = f.has_time || c.hour != 0 || c.minute != 0 || need_seconds;
  if (!need_time) return out;
  out += f.has_time ? f.time_sep : ' ';
  put_int(&out, c.hour, f.pad_hour ? 2 : 1);
  out += ':';
  put_int(&out, c.minute, 2);
  if (need_seconds) {
    out += ':';
    put_int(&out, c.second, 2);
    if (f.frac_digits > 0 || c.micro != 0) {
      int digits = f.frac_digits > 0 ? f.frac_digits : 6;
      int64_t v = c.micro;
      for (int d = 6; d > digits; --d) v /= 10;
      out += '.';
      put_int(&out, v, digits);
    }
  }
  out += f.zone;
  return out;
}

std::string format_iso(Micros t) {
  DateFormat f;
  f.has_time = true;
  f.has_seconds = true;
  return format_datetime(t, f);
}

}  // namespace ssmkit::timeseries
