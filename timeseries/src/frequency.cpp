// Frequency names (pandas offset aliases), inference from timestamps and date continuation.
// Inference: the most common positive step (ties: the smaller); steps of 28 days or more are read as
// calendar months / quarters / years when the day of month repeats (or every row is a month end);
// daily data on weekdays only, with Friday -> Monday gaps, is "B". Calendar arithmetic: datetime.h.
#include "ssmkit/timeseries/frequency.h"

#include <algorithm>
#include <map>

#include "ssmkit/core/error.h"

namespace ssmkit::timeseries {

namespace {

bool is_calendar(FreqUnit u) {
  return u == FreqUnit::BusinessDay || u == FreqUnit::MonthStart || u == FreqUnit::MonthEnd ||
         u == FreqUnit::QuarterStart || u == FreqUnit::QuarterEnd || u == FreqUnit::YearStart ||
         u == FreqUnit::YearEnd;
}

int64_t unit_micros(FreqUnit u) {
  switch (u) {
    case FreqUnit::Micro: return 1;
    case FreqUnit::Milli: return 1000;
    case FreqUnit::Second: return kMicrosPerSecond;
    case FreqUnit::Minute: return 60 * kMicrosPerSecond;
    case FreqUnit::Hour: return 3600 * kMicrosPerSecond;
    case FreqUnit::Day: return kMicrosPerDay;
    case FreqUnit::Week: return 7 * kMicrosPerDay;
    default: return 0;
  }
}

int months_per_step(FreqUnit u) {
  if (u == FreqUnit::QuarterStart || u == FreqUnit::QuarterEnd) return 3;
  if (u == FreqUnit::YearStart || u == FreqUnit::YearEnd) return 12;
  return 1;
}

bool is_month_end(const CivilTime& c) { return c.day == days_in_month(c.year, c.month); }

}  // namespace

bool operator==(const Frequency& a, const Frequency& b) { return a.unit == b.unit && a.n == b.n; }

Frequency parse_frequency(const std::string& name) {
  size_t i = 0;
  int64_t n = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9' && n < 1000000000) n = n * 10 + (name[i++] - '0');
  if (i == 0) n = 1;
  std::string a = name.substr(i);
  SSMKIT_CHECK(n > 0, "frequency '", name, "': multiple must be positive; expected e.g. 15min, h, D");
  auto starts = [&](const char* p) { return a.rfind(p, 0) == 0; };
  Frequency f{FreqUnit::Hour, n};
  if (a == "us" || a == "U") f.unit = FreqUnit::Micro;
  else if (a == "ms" || a == "L") f.unit = FreqUnit::Milli;
  else if (a == "s" || a == "S") f.unit = FreqUnit::Second;
  else if (a == "min" || a == "T" || a == "t") f.unit = FreqUnit::Minute;
  else if (a == "h" || a == "H") f.unit = FreqUnit::Hour;
  else if (a == "D" || a == "d") f.unit = FreqUnit::Day;
  else if (a == "B" || a == "b") f.unit = FreqUnit::BusinessDay;
  else if (a == "W" || a == "w" || starts("W-")) f.unit = FreqUnit::Week;
  else if (a == "MS") f.unit = FreqUnit::MonthStart;
  else if (a == "ME" || a == "M" || a == "m") f.unit = FreqUnit::MonthEnd;
  else if (a == "QS" || starts("QS-")) f.unit = FreqUnit::QuarterStart;
  else if (a == "QE" || a == "Q" || starts("QE-") || starts("Q-")) f.unit = FreqUnit::QuarterEnd;
  else if (a == "YS" || a == "AS" || starts("YS-") || starts("AS-")) f.unit = FreqUnit::YearStart;
  else if (a == "YE" || a == "Y" || a == "A" || a == "a" || starts("YE-") || starts("Y-") || starts("A-"))
    f.unit = FreqUnit::YearEnd;
  else
    SSMKIT_CHECK(false, "frequency '", name, "': unknown; expected one of s, min, h, D, B, W, MS, ME, QS, QE, YS, YE ",
                 "with an optional multiple such as 15min");
  return f;
}

std::string frequency_name(const Frequency& f) {
  const char* u = "";
  switch (f.unit) {
    case FreqUnit::Micro: u = "us"; break;
    case FreqUnit::Milli: u = "ms"; break;
    case FreqUnit::Second: u = "s"; break;
    case FreqUnit::Minute: u = "min"; break;
    case FreqUnit::Hour: u = "h"; break;
    case FreqUnit::Day: u = "D"; break;
    case FreqUnit::BusinessDay: u = "B"; break;
    case FreqUnit::Week: u = "W"; break;
    case FreqUnit::MonthStart: u = "MS"; break;
    case FreqUnit::MonthEnd: u = "ME"; break;
    case FreqUnit::QuarterStart: u = "QS"; break;
    case FreqUnit::QuarterEnd: u = "QE"; break;
    case FreqUnit::YearStart: u = "YS"; break;
    case FreqUnit::YearEnd: u = "YE"; break;
  }
  return f.n == 1 ? std::string(u) : std::to_string(f.n) + u;
}

int64_t frequency_micros(const Frequency& f) { return unit_micros(f.unit) * f.n; }

Frequency infer_frequency(const std::vector<Micros>& t, const std::string& what) {
  SSMKIT_CHECK(t.size() >= 2, what, ": ", t.size(),
               " timestamp(s); expected at least 2 to infer the sampling frequency (give it with --freq)");
  std::map<int64_t, int64_t> steps;  // positive difference -> count
  for (size_t i = 1; i < t.size(); ++i)
    if (t[i] > t[i - 1]) ++steps[t[i] - t[i - 1]];
  SSMKIT_CHECK(!steps.empty(), what, ": no two timestamps differ; expected increasing times to infer the ",
               "sampling frequency (give it with --freq)");
  int64_t d = 0, best = 0;
  for (const auto& [step, count] : steps)
    if (count > best) d = step, best = count;  // ties keep the smaller step (map order)

  if (d >= 28 * kMicrosPerDay) {
    // Calendar months: the month difference of most steps, the day of month repeated or always the last.
    std::map<int64_t, int64_t> months;
    int64_t pairs = 0, same_day = 0;
    bool all_end = true;
    for (size_t i = 0; i < t.size(); ++i) {
      CivilTime c = civil_from_micros(t[i]);
      all_end = all_end && is_month_end(c);
      if (i == 0 || t[i] <= t[i - 1]) continue;
      CivilTime p = civil_from_micros(t[i - 1]);
      ++pairs;
      ++months[(int64_t{c.year} - p.year) * 12 + c.month - p.month];
      if (c.day == p.day) ++same_day;
    }
    int64_t m = 0, mc = 0;
    for (const auto& [k, count] : months)
      if (count > mc) m = k, mc = count;
    if (m >= 1 && 2 * mc > pairs && (all_end || 2 * same_day > pairs)) {
      FreqUnit start = FreqUnit::MonthStart, end = FreqUnit::MonthEnd;
      int64_t n = m;
      if (m % 12 == 0) start = FreqUnit::YearStart, end = FreqUnit::YearEnd, n = m / 12;
      else if (m % 3 == 0) start = FreqUnit::QuarterStart, end = FreqUnit::QuarterEnd, n = m / 3;
      return {all_end ? end : start, n};
    }
  }
  if (d == kMicrosPerDay) {
    // Business days: no weekend rows and at least one Friday -> Monday step.
    bool weekdays_only = true, weekend_gap = false;
    for (size_t i = 0; i < t.size(); ++i) {
      int dow = day_of_week(t[i]);
      weekdays_only = weekdays_only && dow < 5;
      if (i > 0 && dow == 0 && t[i] - t[i - 1] == 3 * kMicrosPerDay) weekend_gap = true;
    }
    if (weekdays_only && weekend_gap) return {FreqUnit::BusinessDay, 1};
  }
  for (FreqUnit u : {FreqUnit::Week, FreqUnit::Day, FreqUnit::Hour, FreqUnit::Minute, FreqUnit::Second,
                     FreqUnit::Milli}) {
    if (d % unit_micros(u) == 0) return {u, d / unit_micros(u)};
  }
  return {FreqUnit::Micro, d};
}

Micros advance(Micros t, const Frequency& f, int64_t k) {
  if (!is_calendar(f.unit)) return t + k * f.n * unit_micros(f.unit);
  int64_t steps = k * f.n;
  if (f.unit == FreqUnit::BusinessDay) {
    int64_t day = t >= 0 ? t / kMicrosPerDay : -((-t + kMicrosPerDay - 1) / kMicrosPerDay);
    int64_t in_day = t - day * kMicrosPerDay;
    int64_t dir = steps >= 0 ? 1 : -1;
    for (int64_t s = 0; s != steps; s += dir) {
      day += dir;
      while (day_of_week(day * kMicrosPerDay) >= 5) day += dir;
    }
    return day * kMicrosPerDay + in_day;
  }
  CivilTime c = civil_from_micros(t);
  int64_t total = int64_t{c.year} * 12 + (c.month - 1) + steps * months_per_step(f.unit);
  int64_t y = total >= 0 ? total / 12 : -((-total + 11) / 12);
  c.year = static_cast<int>(y);
  c.month = static_cast<int>(total - y * 12) + 1;
  bool to_end = f.unit == FreqUnit::MonthEnd || f.unit == FreqUnit::QuarterEnd || f.unit == FreqUnit::YearEnd;
  c.day = to_end ? days_in_month(c.year, c.month) : std::min(c.day, days_in_month(c.year, c.month));
  return micros_from_civil(c);
}

std::vector<Micros> continue_dates(Micros last, const Frequency& f, int64_t count) {
  SSMKIT_CHECK(count >= 0, "continue_dates: count ", count, " is negative; expected >= 0");
  std::vector<Micros> out(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) out[static_cast<size_t>(i)] = advance(last, f, i + 1);
  return out;
}

std::vector<std::string> continue_dates_formatted(Micros last, const Frequency& f, int64_t count,
                                                  const DateFormat& format) {
  std::vector<std::string> out;
  for (Micros t : continue_dates(last, f, count)) out.push_back(format_datetime(t, format));
  return out;
}

}  // namespace ssmkit::timeseries
