// Time-mark features as the Time-Series-Library builds them (data_provider/data_loader.py with
// utils/timefeatures.py): timeenc=1 ("timeF") gives per-frequency features scaled to [-0.5, 0.5]
// (hourly: HourOfDay, DayOfWeek, DayOfMonth, DayOfYear; minutely prepends MinuteOfHour; ...);
// timeenc=0 gives integer calendar columns (month, day, weekday, hour [, minute // 15]).
// Divergence: pandas has no feature list for month/quarter/year *start* offsets or sub-second ones
// (TSLib raises); here MS/QS use [MonthOfYear] like ME/QE, YS none like YE, ms/us those of seconds.
#pragma once

#include <cstdint>
#include <vector>

#include "ssmkit/timeseries/datetime.h"
#include "ssmkit/timeseries/frequency.h"

namespace ssmkit::timeseries {

enum class TimeFeature : uint8_t {
  SecondOfMinute,  // second / 59 - 0.5
  MinuteOfHour,    // minute / 59 - 0.5
  HourOfDay,       // hour / 23 - 0.5
  DayOfWeek,       // dayofweek (Monday 0) / 6 - 0.5
  DayOfMonth,      // (day - 1) / 30 - 0.5
  DayOfYear,       // (dayofyear - 1) / 365 - 0.5
  MonthOfYear,     // (month - 1) / 11 - 0.5
  WeekOfYear,      // (ISO week - 1) / 52 - 0.5
};

const char* time_feature_name(TimeFeature f);  // the TSLib class name, e.g. "HourOfDay"
double time_feature_value(TimeFeature f, Micros t);

// The features TSLib's time_features_from_frequency_str gives for this frequency, in its order:
// s: [SecondOfMinute, MinuteOfHour, HourOfDay, DayOfWeek, DayOfMonth, DayOfYear]; min: the last five;
// h: the last four; D/B: [DayOfWeek, DayOfMonth, DayOfYear]; W: [DayOfMonth, WeekOfYear];
// month/quarter: [MonthOfYear]; year: none. The multiple is ignored ("15min" = "min").
std::vector<TimeFeature> time_features_for(const Frequency& f);

// timeenc=1: t (T) -> marks (T, F) row-major, F = time_features_for(f).size(). Computed in double and
// rounded to float (TSLib computes float64, the model sees float32).
std::vector<float> time_marks_timef(const std::vector<Micros>& t, const Frequency& f);

// timeenc=0: t (T) -> marks (T, 4) [month, day, weekday, hour], or (T, 5) with minute // 15 appended
// (TSLib's Dataset_ETT_minute only).
std::vector<float> time_marks_calendar(const std::vector<Micros>& t, bool with_quarter_hour);

}  // namespace ssmkit::timeseries
