// Sampling frequency of a series: pandas-style names ("15min", "h", "D", "B", "W", "MS", "ME", "QS",
// "YS", "s"), inference from timestamps (the most common positive step; calendar months, quarters and
// years recognised by their day of month; business days by weekend gaps) and continuation of dates
// after the last row (for forecasting). Not here: holidays, week anchors other than "every 7 days",
// time zones (times are wall clock, see datetime.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ssmkit/timeseries/datetime.h"

namespace ssmkit::timeseries {

enum class FreqUnit : uint8_t {
  Micro, Milli, Second, Minute, Hour, Day,  // fixed steps
  BusinessDay,                              // Monday..Friday, weekends skipped
  Week,                                     // 7 days
  MonthStart,                               // calendar months keeping the day of month ("MS")
  MonthEnd,                                 // last day of each month ("ME", pandas < 2.2 "M")
  QuarterStart, QuarterEnd,                 // 3 calendar months ("QS", "QE"/"Q")
  YearStart, YearEnd,                       // 12 calendar months ("YS"/"AS", "YE"/"Y"/"A")
};

struct Frequency {
  FreqUnit unit = FreqUnit::Hour;
  int64_t n = 1;  // multiple of the unit: 15 for "15min"
};

bool operator==(const Frequency& a, const Frequency& b);

// "15min", "h", "2h", "D", "B", "W", "MS", "ME", "QS", "QE", "YS", "YE", "s", "ms", "us". Also accepts
// pandas' aliases (T/t/min, H, S, d, L, U, M, Q, A/Y, AS, W-SUN...). Throws Error naming the string.
Frequency parse_frequency(const std::string& name);
std::string frequency_name(const Frequency& f);  // canonical spelling (first of the list above)

// Fixed length of one step in microseconds; 0 for calendar units (B, MS, ME, QS, QE, YS, YE).
int64_t frequency_micros(const Frequency& f);

// The frequency of sorted timestamps `t` (T >= 2): the most common positive difference, turned into a
// calendar unit when it spans months. `what` names the data in the error thrown when no positive
// difference exists.
Frequency infer_frequency(const std::vector<Micros>& t, const std::string& what);

// t moved by k steps of f (k may be negative for fixed units). Calendar months keep the day of month
// of t, clamped to the month's length (Jan 31 + 1 month = Feb 28/29); "ME"/"QE"/"YE" land on month ends.
Micros advance(Micros t, const Frequency& f, int64_t k = 1);

// The `count` times after `last`: advance(last, f, 1..count) (computed from `last` each time: no drift).
std::vector<Micros> continue_dates(Micros last, const Frequency& f, int64_t count);
// The same, written in `format` (the input file's style).
std::vector<std::string> continue_dates_formatted(Micros last, const Frequency& f, int64_t count,
                                                  const DateFormat& format);

}  // namespace ssmkit::timeseries
