// Calendar arithmetic, frequency names / inference / continuation, and TSLib's time-mark features
// (utils/timefeatures.py) for hand-checked timestamps.
#include <string>
#include <vector>

#include "gradcheck.h"
#include "ssmkit/timeseries/datetime.h"
#include "ssmkit/timeseries/frequency.h"
#include "ssmkit/timeseries/time_features.h"

using namespace ssmkit::timeseries;
using ssmkit::test::expect_error;

namespace {

Micros at(int y, int mo, int d, int h = 0, int mi = 0, int s = 0, int us = 0) {
  return micros_from_civil({y, mo, d, h, mi, s, us});
}

// n timestamps from t0, each `step` apart.
std::vector<Micros> regular(Micros t0, int64_t step, int n) {
  std::vector<Micros> t;
  for (int i = 0; i < n; ++i) t.push_back(t0 + i * step);
  return t;
}

std::string inferred(const std::vector<Micros>& t) { return frequency_name(infer_frequency(t, "test")); }

}  // namespace

TEST(Datetime, CivilDays) {
  EXPECT_EQ(days_from_civil(1970, 1, 1), 0);
  EXPECT_EQ(days_from_civil(2000, 3, 1), 11017);
  EXPECT_EQ(days_from_civil(1969, 12, 31), -1);
  EXPECT_EQ(days_from_civil(1600, 1, 1), -135140);
  // Round trip over ~4400 years, every 97 days (both sides of 1970 and of leap centuries).
  for (int64_t d = -800000; d <= 800000; d += 97) {
    CivilTime c = civil_from_micros(d * kMicrosPerDay);
    ASSERT_EQ(days_from_civil(c.year, c.month, c.day), d);
  }
  CivilTime c = civil_from_micros(-1);  // 1969-12-31 23:59:59.999999
  EXPECT_EQ(c.year, 1969);
  EXPECT_EQ(c.day, 31);
  EXPECT_EQ(c.second, 59);
  EXPECT_EQ(c.micro, 999999);
  EXPECT_TRUE(is_leap_year(2000));
  EXPECT_FALSE(is_leap_year(1900));
  EXPECT_EQ(days_in_month(2020, 2), 29);
  EXPECT_EQ(days_in_month(2021, 2), 28);
}

TEST(Datetime, WeekdayDayOfYearIsoWeek) {
  EXPECT_EQ(day_of_week(at(1970, 1, 1)), 3);  // Thursday
  EXPECT_EQ(day_of_week(at(2016, 7, 1)), 4);  // Friday
  EXPECT_EQ(day_of_week(at(1969, 12, 29)), 0);  // Monday
  EXPECT_EQ(day_of_year(at(2016, 7, 1)), 183);
  EXPECT_EQ(day_of_year(at(2015, 12, 31)), 365);
  EXPECT_EQ(day_of_year(at(2016, 12, 31, 23)), 366);
  EXPECT_EQ(iso_week(at(2016, 7, 1)), 26);
  EXPECT_EQ(iso_week(at(2016, 1, 1)), 53);   // Friday: last week of 2015
  EXPECT_EQ(iso_week(at(2018, 12, 31)), 1);  // Monday: first week of 2019
  EXPECT_EQ(iso_week(at(2020, 12, 31)), 53);
  EXPECT_EQ(iso_week(at(2021, 1, 4)), 1);
}

TEST(Datetime, FormatsRoundTrip) {
  DateFormat f;
  ASSERT_TRUE(parse_datetime("2016-07-01 13:45:00", true, &f).has_value());
  EXPECT_EQ(f.describe(), "YYYY-MM-DD hh:mm:ss");
  EXPECT_EQ(format_datetime(at(2016, 7, 1, 13, 45), f), "2016-07-01 13:45:00");
  ASSERT_TRUE(parse_datetime("1990/1/1 0:00", true, &f).has_value());
  EXPECT_EQ(f.describe(), "YYYY/M/D h:mm");
  EXPECT_EQ(format_datetime(at(2010, 10, 11), f), "2010/10/11 0:00");
  EXPECT_EQ(*parse_datetime("31.12.1999"), at(1999, 12, 31));
  EXPECT_EQ(*parse_datetime("2021-06-01T08:00:00.123456Z"), at(2021, 6, 1, 8, 0, 0, 123456));
  EXPECT_EQ(*parse_datetime("2021-06-01T08:00:00.1234567"), at(2021, 6, 1, 8, 0, 0, 123456));  // truncated
  EXPECT_FALSE(parse_datetime("2021-06-01 25:00").has_value());
  EXPECT_FALSE(parse_datetime("12.5").has_value());
  EXPECT_FALSE(parse_datetime("21-06-01").has_value());  // two-digit years are not read
  // A format without seconds still writes them when the time needs them.
  ASSERT_TRUE(parse_datetime("2020-01-01 00:00", true, &f).has_value());
  EXPECT_EQ(format_datetime(at(2020, 1, 1, 0, 0, 30), f), "2020-01-01 00:00:30");
  EXPECT_EQ(format_iso(at(2016, 7, 1)), "2016-07-01 00:00:00");
}

TEST(Frequency, NamesAndParsing) {
  for (const char* name : {"s", "30s", "min", "15min", "h", "2h", "D", "B", "W", "MS", "ME", "QS", "QE", "YS", "YE",
                           "ms", "500ms", "us"})
    EXPECT_EQ(frequency_name(parse_frequency(name)), name);
  EXPECT_EQ(frequency_name(parse_frequency("t")), "min");  // TSLib's spelling
  EXPECT_EQ(frequency_name(parse_frequency("15T")), "15min");
  EXPECT_EQ(frequency_name(parse_frequency("H")), "h");
  EXPECT_EQ(frequency_name(parse_frequency("M")), "ME");
  EXPECT_EQ(frequency_name(parse_frequency("W-SUN")), "W");
  EXPECT_EQ(frequency_name(parse_frequency("A")), "YE");
  expect_error([] { parse_frequency("5parsecs"); }, "frequency '5parsecs': unknown; expected one of");
  expect_error([] { parse_frequency("0h"); }, "frequency '0h': multiple must be positive");
}

TEST(Frequency, Inference) {
  const int64_t s = kMicrosPerSecond, day = kMicrosPerDay;
  EXPECT_EQ(inferred(regular(at(2016, 7, 1), 3600 * s, 10)), "h");
  EXPECT_EQ(inferred(regular(at(2016, 7, 1), 900 * s, 10)), "15min");
  EXPECT_EQ(inferred(regular(at(2020, 1, 1), 600 * s, 10)), "10min");
  EXPECT_EQ(inferred(regular(at(2020, 1, 1), 1 * s, 10)), "s");
  EXPECT_EQ(inferred(regular(at(2020, 1, 1), day, 10)), "D");
  EXPECT_EQ(inferred(regular(at(2020, 1, 6), 7 * day, 10)), "W");
  // Most common positive step wins over gaps and duplicates.
  std::vector<Micros> gappy = regular(at(2020, 1, 1), 7200 * s, 10);
  gappy.push_back(gappy.back() + 5 * 7200 * s);
  gappy.push_back(gappy.back());
  EXPECT_EQ(inferred(gappy), "2h");
  // Weekdays only, Friday -> Monday gaps: business days.
  std::vector<Micros> bdays;
  for (int d = 6; d <= 31; ++d)
    if (day_of_week(at(2020, 1, d)) < 5) bdays.push_back(at(2020, 1, d));
  EXPECT_EQ(inferred(bdays), "B");
  // Calendar months, quarters, years.
  std::vector<Micros> ms, me, qs, ys;
  for (int m = 1; m <= 12; ++m) {
    ms.push_back(at(2019, m, 1));
    me.push_back(at(2019, m, days_in_month(2019, m)));
  }
  for (int q = 0; q < 8; ++q) qs.push_back(at(2019 + q / 4, 1 + 3 * (q % 4), 1));
  for (int y = 2000; y < 2010; ++y) ys.push_back(at(y, 1, 1));
  EXPECT_EQ(inferred(ms), "MS");
  EXPECT_EQ(inferred(me), "ME");
  EXPECT_EQ(inferred(qs), "QS");
  EXPECT_EQ(inferred(ys), "YS");
  // Fixed 30-day steps are not months.
  EXPECT_EQ(inferred(regular(at(2020, 1, 1), 30 * day, 12)), "30D");
  expect_error([&] { infer_frequency({at(2020, 1, 1)}, "one.csv"); }, "one.csv: 1 timestamp(s); expected at least 2");
  expect_error([&] { infer_frequency({at(2020, 1, 1), at(2020, 1, 1)}, "same.csv"); }, "same.csv: no two timestamps");
}

TEST(Frequency, Continuation) {
  EXPECT_EQ(advance(at(2020, 1, 31), parse_frequency("MS"), 1), at(2020, 2, 29));  // clamped
  EXPECT_EQ(advance(at(2020, 1, 31), parse_frequency("MS"), 2), at(2020, 3, 31));  // from the start: no drift
  EXPECT_EQ(advance(at(2020, 1, 31), parse_frequency("ME"), 1), at(2020, 2, 29));
  EXPECT_EQ(advance(at(2020, 2, 29), parse_frequency("ME"), 1), at(2020, 3, 31));
  EXPECT_EQ(advance(at(2020, 12, 31), parse_frequency("QE"), 1), at(2021, 3, 31));
  EXPECT_EQ(advance(at(2020, 2, 29), parse_frequency("YS"), 1), at(2021, 2, 28));
  EXPECT_EQ(advance(at(2020, 11, 15), parse_frequency("2MS"), 1), at(2021, 1, 15));
  EXPECT_EQ(advance(at(2020, 1, 3, 9), parse_frequency("B"), 1), at(2020, 1, 6, 9));  // Friday -> Monday
  EXPECT_EQ(advance(at(2020, 1, 6), parse_frequency("B"), -1), at(2020, 1, 3));
  EXPECT_EQ(advance(at(2020, 1, 3), parse_frequency("B"), 5), at(2020, 1, 10));
  EXPECT_EQ(advance(at(2018, 6, 26, 19, 45), parse_frequency("15min"), 1), at(2018, 6, 26, 20, 0));
  std::vector<Micros> next = continue_dates(at(2020, 12, 31, 23), parse_frequency("h"), 3);
  EXPECT_EQ(next, (std::vector<Micros>{at(2021, 1, 1, 0), at(2021, 1, 1, 1), at(2021, 1, 1, 2)}));
  DateFormat f;
  ASSERT_TRUE(parse_datetime("31/12/2020", true, &f).has_value());
  EXPECT_EQ(continue_dates_formatted(at(2020, 12, 31), parse_frequency("D"), 2, f),
            (std::vector<std::string>{"01/01/2021", "02/01/2021"}));
}

TEST(TimeFeatures, HandCheckedValues) {
  // 2016-07-01 00:00, Friday, day of year 183 (leap year), ISO week 26.
  Micros t = at(2016, 7, 1);
  std::vector<float> h = time_marks_timef({t}, parse_frequency("h"));
  ASSERT_EQ(h.size(), 4u);
  EXPECT_FLOAT_EQ(h[0], -0.5f);                                   // HourOfDay 0/23 - 0.5
  EXPECT_FLOAT_EQ(h[1], static_cast<float>(4.0 / 6.0 - 0.5));     // DayOfWeek
  EXPECT_FLOAT_EQ(h[2], -0.5f);                                   // DayOfMonth (1-1)/30 - 0.5
  EXPECT_FLOAT_EQ(h[3], static_cast<float>(182.0 / 365.0 - 0.5));  // DayOfYear
  // 2018-06-26 19:45, Tuesday, day 177 of 2018: 15-minute data gets MinuteOfHour first.
  Micros u = at(2018, 6, 26, 19, 45);
  std::vector<float> m = time_marks_timef({u}, parse_frequency("15min"));
  ASSERT_EQ(m.size(), 5u);
  EXPECT_FLOAT_EQ(m[0], static_cast<float>(45.0 / 59.0 - 0.5));
  EXPECT_FLOAT_EQ(m[1], static_cast<float>(19.0 / 23.0 - 0.5));
  EXPECT_FLOAT_EQ(m[2], static_cast<float>(1.0 / 6.0 - 0.5));
  EXPECT_FLOAT_EQ(m[3], static_cast<float>(25.0 / 30.0 - 0.5));
  EXPECT_FLOAT_EQ(m[4], static_cast<float>(176.0 / 365.0 - 0.5));
  EXPECT_DOUBLE_EQ(time_feature_value(TimeFeature::SecondOfMinute, at(2020, 1, 1, 0, 0, 59)), 0.5);
  EXPECT_DOUBLE_EQ(time_feature_value(TimeFeature::MonthOfYear, t), 6.0 / 11.0 - 0.5);
  EXPECT_DOUBLE_EQ(time_feature_value(TimeFeature::WeekOfYear, t), 25.0 / 52.0 - 0.5);
  EXPECT_DOUBLE_EQ(time_feature_value(TimeFeature::DayOfMonth, at(2020, 1, 31)), 0.5);
  // Feature lists per frequency (TSLib's time_features_from_frequency_str).
  auto count = [](const char* f) { return time_features_for(parse_frequency(f)).size(); };
  EXPECT_EQ(count("s"), 6u);
  EXPECT_EQ(count("t"), 5u);
  EXPECT_EQ(count("10min"), 5u);
  EXPECT_EQ(count("h"), 4u);
  EXPECT_EQ(count("D"), 3u);
  EXPECT_EQ(count("B"), 3u);
  EXPECT_EQ(count("W"), 2u);
  EXPECT_EQ(count("ME"), 1u);
  EXPECT_EQ(count("YE"), 0u);
  EXPECT_STREQ(time_feature_name(time_features_for(parse_frequency("h"))[0]), "HourOfDay");
  // timeenc = 0: month, day, weekday, hour [, minute // 15].
  std::vector<float> c = time_marks_calendar({u}, true);
  EXPECT_EQ(c, (std::vector<float>{6, 26, 1, 19, 3}));
  EXPECT_EQ(time_marks_calendar({u}, false).size(), 4u);
}
