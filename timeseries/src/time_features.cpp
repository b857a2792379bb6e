// Time-mark features of the Time-Series-Library (utils/timefeatures.py, taken there from GluonTS):
// each feature is a calendar field divided by its largest value minus 0.5, in double, then stored as
// float. The feature list per frequency follows time_features_from_frequency_str (see the header for
// the start-anchored and sub-second units pandas does not map).
#include "ssmkit/timeseries/time_features.h"

namespace ssmkit::timeseries {

const char* time_feature_name(TimeFeature f) {
  switch (f) {
    case TimeFeature::SecondOfMinute: return "SecondOfMinute";
    case TimeFeature::MinuteOfHour: return "MinuteOfHour";
    case TimeFeature::HourOfDay: return "HourOfDay";
    case TimeFeature::DayOfWeek: return "DayOfWeek";
    case TimeFeature::DayOfMonth: return "DayOfMonth";
    case TimeFeature::DayOfYear: return "DayOfYear";
    case TimeFeature::MonthOfYear: return "MonthOfYear";
    case TimeFeature::WeekOfYear: return "WeekOfYear";
  }
  return "?";
}

double time_feature_value(TimeFeature f, Micros t) {
  CivilTime c = civil_from_micros(t);
  switch (f) {
    case TimeFeature::SecondOfMinute: return c.second / 59.0 - 0.5;
    case TimeFeature::MinuteOfHour: return c.minute / 59.0 - 0.5;
    case TimeFeature::HourOfDay: return c.hour / 23.0 - 0.5;
    case TimeFeature::DayOfWeek: return day_of_week(t) / 6.0 - 0.5;
    case TimeFeature::DayOfMonth: return (c.day - 1) / 30.0 - 0.5;
    case TimeFeature::DayOfYear: return (day_of_year(t) - 1) / 365.0 - 0.5;
    case TimeFeature::MonthOfYear: return (c.month - 1) / 11.0 - 0.5;
    case TimeFeature::WeekOfYear: return (iso_week(t) - 1) / 52.0 - 0.5;
  }
  return 0.0;
}

std::vector<TimeFeature> time_features_for(const Frequency& f) {
  using TF = TimeFeature;
  switch (f.unit) {
    case FreqUnit::Micro:
    case FreqUnit::Milli:
    case FreqUnit::Second:
      return {TF::SecondOfMinute, TF::MinuteOfHour, TF::HourOfDay, TF::DayOfWeek, TF::DayOfMonth, TF::DayOfYear};
    case FreqUnit::Minute: return {TF::MinuteOfHour, TF::HourOfDay, TF::DayOfWeek, TF::DayOfMonth, TF::DayOfYear};
    case FreqUnit::Hour: return {TF::HourOfDay, TF::DayOfWeek, TF::DayOfMonth, TF::DayOfYear};
    case FreqUnit::Day:
    case FreqUnit::BusinessDay: return {TF::DayOfWeek, TF::DayOfMonth, TF::DayOfYear};
    case FreqUnit::Week: return {TF::DayOfMonth, TF::WeekOfYear};
    case FreqUnit::MonthStart:
    case FreqUnit::MonthEnd:
    case FreqUnit::QuarterStart:
    case FreqUnit::QuarterEnd: return {TF::MonthOfYear};
    case FreqUnit::YearStart:
    case FreqUnit::YearEnd: return {};
  }
  return {};
}

std::vector<float> time_marks_timef(const std::vector<Micros>& t, const Frequency& f) {
  std::vector<TimeFeature> feats = time_features_for(f);
  size_t nf = feats.size();
  std::vector<float> out(t.size() * nf);
  for (size_t i = 0; i < t.size(); ++i)
    for (size_t j = 0; j < nf; ++j) out[i * nf + j] = static_cast<float>(time_feature_value(feats[j], t[i]));
  return out;
}

std::vector<float> time_marks_calendar(const std::vector<Micros>& t, bool with_quarter_hour) {
  size_t nf = with_quarter_hour ? 5 : 4;
  std::vector<float> out(t.size() * nf);
  for (size_t i = 0; i < t.size(); ++i) {
    CivilTime c = civil_from_micros(t[i]);
    float* row = &out[i * nf];
    row[0] = static_cast<float>(c.month);
    row[1] = static_cast<float>(c.day);
    row[2] = static_cast<float>(day_of_week(t[i]));
    row[3] = static_cast<float>(c.hour);
    if (with_quarter_hour) row[4] = static_cast<float>(c.minute / 15);
  }
  return out;
}

}  // namespace ssmkit::timeseries
