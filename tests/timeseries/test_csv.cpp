// CSV reader: every date format and separator from the tiny fixtures in tests/data/timeseries (quoting,
// CRLF, BOM, decimal comma, Unix seconds, fractions and zones), the fills, and each error case with its
// message (file, line and column named).
#include <cmath>
#include <string>
#include <vector>

#include "gradcheck.h"
#include "ssmkit/timeseries/csv_reader.h"
#include "ssmkit/timeseries/frequency.h"
#include "ssmkit/timeseries/protocol.h"

using namespace ssmkit::timeseries;
using ssmkit::test::error_of;
using ssmkit::test::expect_error;

namespace {

std::string fixture(const std::string& name) { return std::string(SSMKIT_TEST_DATA_DIR) + "/timeseries/" + name; }

CivilTime civil(Micros t) { return civil_from_micros(t); }

Micros at(int y, int mo, int d, int h = 0, int mi = 0, int s = 0, int us = 0) {
  return micros_from_civil({y, mo, d, h, mi, s, us});
}

// CsvOptions with one field changed (designated initializers would warn about the others).
CsvOptions date_col(const std::string& name) {
  CsvOptions o;
  o.date_col = name;
  return o;
}
CsvOptions separator(char c) {
  CsvOptions o;
  o.separator = c;
  return o;
}
CsvOptions month_first() {
  CsvOptions o;
  o.day_first = false;
  return o;
}
CsvOptions fill(FillMethod f) {
  CsvOptions o;
  o.fill = f;
  return o;
}
CsvOptions loose_time() {
  CsvOptions o;
  o.strict_time = false;
  return o;
}

// The next `n` dates after the table's last row at its inferred frequency, written like the file.
std::vector<std::string> next_dates(const CsvTable& t, int64_t n) {
  return continue_dates_formatted(t.times.back(), infer_frequency(t.times, t.path), n, t.date_format);
}

}  // namespace

TEST(Csv, IsoHourlyComma) {
  CsvTable t = read_csv(fixture("iso_hourly_comma.csv"));
  EXPECT_EQ(t.separator, ',');
  EXPECT_EQ(t.date_name, "date");
  EXPECT_EQ(t.columns, (std::vector<std::string>{"HUFL", "OT"}));
  ASSERT_EQ(t.rows(), 5);
  EXPECT_EQ(t.times[0], at(2016, 7, 1));
  EXPECT_EQ(t.times[4], at(2016, 7, 1, 4));
  EXPECT_DOUBLE_EQ(t.at(0, 0), 5.827);
  EXPECT_DOUBLE_EQ(t.at(4, 1), 21.948);
  EXPECT_EQ(t.lines, (std::vector<int64_t>{2, 3, 4, 5, 6}));
  EXPECT_EQ(t.date_format.describe(), "YYYY-MM-DD hh:mm:ss");
  EXPECT_EQ(frequency_name(infer_frequency(t.times, t.path)), "h");
  EXPECT_EQ(next_dates(t, 2), (std::vector<std::string>{"2016-07-01 05:00:00", "2016-07-01 06:00:00"}));
  EXPECT_EQ(t.column_index("OT"), 1);
  expect_error([&] { t.column_index("LULL"); }, "iso_hourly_comma.csv: no column 'LULL'; expected one of 'HUFL', 'OT'");
}

TEST(Csv, IsoTWithZoneSemicolonDecimalComma) {
  CsvTable t = read_csv(fixture("iso_t_semicolon.csv"));
  EXPECT_EQ(t.separator, ';');
  EXPECT_EQ(t.date_name, "timestamp");
  EXPECT_EQ(t.date_format.describe(), "YYYY-MM-DDThh:mmZ");
  ASSERT_EQ(t.rows(), 4);
  EXPECT_EQ(t.times[3], at(2021, 3, 1, 0, 45));
  std::vector<double> temp{1.5, 2.25, -0.5, 3.0};
  for (int r = 0; r < 4; ++r) EXPECT_DOUBLE_EQ(t.at(r, 0), temp[r]) << r;  // "1,5", "+3"
  EXPECT_EQ(frequency_name(infer_frequency(t.times, t.path)), "15min");
  EXPECT_EQ(next_dates(t, 1), (std::vector<std::string>{"2021-03-01T01:00Z"}));
}

TEST(Csv, SlashDatesTabCrlfBomBlankLine) {
  CsvTable t = read_csv(fixture("slash_tab_crlf_bom.tsv"));
  EXPECT_EQ(t.separator, '\t');
  EXPECT_EQ(t.date_name, "day");  // BOM stripped
  EXPECT_EQ(t.columns, (std::vector<std::string>{"sales", "price"}));
  ASSERT_EQ(t.rows(), 4);
  EXPECT_EQ(t.lines, (std::vector<int64_t>{2, 3, 4, 6}));  // line 5 is blank
  EXPECT_EQ(t.times[2], at(2020, 1, 1));
  EXPECT_DOUBLE_EQ(t.at(3, 1), 2.0);
  EXPECT_EQ(t.date_format.describe(), "YYYY/MM/DD");
  EXPECT_EQ(frequency_name(infer_frequency(t.times, t.path)), "D");
  EXPECT_EQ(next_dates(t, 2), (std::vector<std::string>{"2020/01/03", "2020/01/04"}));
}

TEST(Csv, DayFirstDatesQuotedFieldsDateNotFirst) {
  CsvTable t = read_csv(fixture("dmy_quoted.csv"));
  EXPECT_EQ(t.date_name, "when");  // the first column is numeric: the first one of dates is picked
  EXPECT_EQ(t.columns, (std::vector<std::string>{"id", "load, kW", "note \"x\""}));
  EXPECT_EQ(t.date_format.order, DateOrder::DMY);
  EXPECT_EQ(t.times[0], at(2020, 12, 31, 23, 30));
  EXPECT_EQ(t.times[2], at(2021, 1, 1, 0, 30));
  EXPECT_DOUBLE_EQ(t.at(0, 1), 1.5);
  EXPECT_DOUBLE_EQ(t.at(2, 2), 9.0);
  EXPECT_EQ(frequency_name(infer_frequency(t.times, t.path)), "30min");
  EXPECT_EQ(next_dates(t, 1), (std::vector<std::string>{"01/01/2021 01:00"}));
}

TEST(Csv, MonthFirstDatesUnpaddedHour) {
  CsvTable t = read_csv(fixture("mdy_unpadded_hour.csv"));
  EXPECT_EQ(t.date_format.order, DateOrder::MDY);  // 25 > 12 in the second field
  EXPECT_EQ(t.times[0], at(2020, 12, 25, 8));
  EXPECT_EQ(t.date_format.describe(), "MM/DD/YYYY h:mm");
  EXPECT_EQ(next_dates(t, 1), (std::vector<std::string>{"12/28/2020 8:00"}));
}

TEST(Csv, UnixSeconds) {
  CsvTable t = read_csv(fixture("unix_seconds.csv"));
  EXPECT_EQ(t.date_name, "unix_time");
  EXPECT_EQ(t.date_format.order, DateOrder::Unix);
  EXPECT_EQ(t.times[0], 1700000000LL * kMicrosPerSecond);
  CivilTime c = civil(t.times[0]);  // 2023-11-14 22:13:20 UTC
  EXPECT_EQ(c.year, 2023);
  EXPECT_EQ(c.month, 11);
  EXPECT_EQ(c.day, 14);
  EXPECT_EQ(c.hour, 22);
  EXPECT_EQ(c.minute, 13);
  EXPECT_EQ(c.second, 20);
  EXPECT_EQ(frequency_name(infer_frequency(t.times, t.path)), "min");
  EXPECT_EQ(next_dates(t, 1), (std::vector<std::string>{"1700000240"}));
  // Named explicitly, any header works; plain numbers in an unnamed column are not taken for dates.
  CsvTable u = parse_csv("t,v\n0,1\n10,2\n", "u.csv", date_col("t"));
  EXPECT_EQ(u.times[1], 10 * kMicrosPerSecond);
  expect_error([] { parse_csv("t,v\n0,1\n10,2\n", "u.csv"); }, "u.csv: no date/time column found among 't', 'v'");
}

TEST(Csv, FractionalSecondsOffsetLeapDay) {
  CsvTable t = read_csv(fixture("iso_fraction_zone.csv"));
  EXPECT_EQ(t.date_format.zone, "+01:00");
  EXPECT_EQ(t.date_format.frac_digits, 3);
  EXPECT_EQ(t.times[0], at(2020, 2, 29, 23, 59, 59, 250000));
  EXPECT_EQ(t.times[2], at(2020, 3, 1, 0, 0, 0, 250000));
  EXPECT_EQ(frequency_name(infer_frequency(t.times, t.path)), "500ms");
  EXPECT_EQ(next_dates(t, 1), (std::vector<std::string>{"2020-03-01T00:00:00.750+01:00"}));
}

TEST(Csv, MonthEndDates) {
  CsvTable t = read_csv(fixture("month_end.csv"));
  EXPECT_EQ(t.date_format.describe(), "YYYY-MM-DD");
  EXPECT_EQ(frequency_name(infer_frequency(t.times, t.path)), "ME");
  EXPECT_EQ(next_dates(t, 2), (std::vector<std::string>{"2020-06-30", "2020-07-31"}));
}

TEST(Csv, InlineVariants) {
  // ISO date + time without seconds; named date column; forced separator.
  CsvTable a = parse_csv("v,stamp\n1,2020-01-05 10:30\n2,2020-01-05 11:30\n", "a.csv", date_col("stamp"));
  EXPECT_EQ(a.times[0], at(2020, 1, 5, 10, 30));
  EXPECT_EQ(a.columns, (std::vector<std::string>{"v"}));
  CsvTable b = parse_csv("date|v\n2020-01-01|1\n", "b.csv", separator('|'));
  EXPECT_DOUBLE_EQ(b.at(0, 0), 1.0);
  // Ambiguous DD/MM vs MM/DD: day_first decides.
  CsvTable d = parse_csv("date,v\n01/02/2020,1\n03/04/2020,2\n", "d.csv");
  EXPECT_EQ(d.times[0], at(2020, 2, 1));
  CsvTable m = parse_csv("date,v\n01/02/2020,1\n03/04/2020,2\n", "m.csv", month_first());
  EXPECT_EQ(m.times[0], at(2020, 1, 2));
  // Dotted European dates, unpadded; 'T' and seconds with fraction in a tab file.
  CsvTable e = parse_csv("date;v\n1.2.2020;1,25\n", "e.csv");
  EXPECT_EQ(e.times[0], at(2020, 2, 1));
  EXPECT_DOUBLE_EQ(e.at(0, 0), 1.25);
  CsvTable f = parse_csv("date\tv\n2020-01-01T00:00:01.5\t3\n", "f.csv");
  EXPECT_EQ(f.times[0], at(2020, 1, 1, 0, 0, 1, 500000));
  // A trailing separator on every line adds no column; an unnamed column is named like pandas does.
  CsvTable g = parse_csv("date,a,\n2020-01-01,1,\n2020-01-02,2,\n", "g.csv");
  EXPECT_EQ(g.columns, (std::vector<std::string>{"a"}));
  CsvTable h = parse_csv("date,,a\n2020-01-01,5,1\n", "h.csv");
  EXPECT_EQ(h.columns, (std::vector<std::string>{"Unnamed: 1", "a"}));
  // No final newline; blank lines at the end; a quoted value with a separator in a ';' file.
  CsvTable k = parse_csv("date;\"a;b\"\n2020-01-01;1\n\n\n", "k.csv");
  ASSERT_EQ(k.rows(), 1);
  EXPECT_EQ(k.columns, (std::vector<std::string>{"a;b"}));
  CsvTable q = parse_csv("date;a\n2020-01-01;\"2,5\"", "q.csv");
  EXPECT_DOUBLE_EQ(q.at(0, 0), 2.5);
  // Unsorted / duplicated times are kept in file order when strict_time is off.
  CsvTable u = parse_csv("date,a\n2020-01-02,1\n2020-01-01,2\n2020-01-01,3\n", "u.csv", loose_time());
  EXPECT_EQ(u.rows(), 3);
}

TEST(Csv, MissingCellsAndFills) {
  expect_error([] { read_csv(fixture("missing_cells.csv")); },
               "missing_cells.csv:2:a: missing value 'NA'; expected a number (use --fill ffill or --fill linear)");
  CsvTable f = read_csv(fixture("missing_cells.csv"), fill(FillMethod::Ffill));
  EXPECT_EQ(f.n_filled, 6);
  std::vector<double> fa{2, 2, 2, 4, 4, 8, 8}, fb{1, 1, 3, 3, 5, 6, 7};  // leading gap of a backfilled
  for (int r = 0; r < 7; ++r) {
    EXPECT_DOUBLE_EQ(f.at(r, 0), fa[r]) << "ffill a row " << r;
    EXPECT_DOUBLE_EQ(f.at(r, 1), fb[r]) << "ffill b row " << r;
  }
  CsvTable l = read_csv(fixture("missing_cells.csv"), fill(FillMethod::Linear));
  std::vector<double> la{2, 2, 3, 4, 6, 8, 8}, lb{1, 2, 3, 4, 5, 6, 7};
  for (int r = 0; r < 7; ++r) {
    EXPECT_DOUBLE_EQ(l.at(r, 0), la[r]) << "linear a row " << r;
    EXPECT_DOUBLE_EQ(l.at(r, 1), lb[r]) << "linear b row " << r;
  }
  expect_error([] { parse_csv("date,a\n2020-01-01,1\n2020-01-02,\n", "e.csv"); },
               "e.csv:3:a: empty cell; expected a number (use --fill ffill or --fill linear)");
  expect_error([] { parse_csv("date,a,b\n2020-01-01,1,\n2020-01-02,2,NA\n", "e.csv", fill(FillMethod::Ffill)); },
               "e.csv: column 'b' has no values (every cell is missing)");
  EXPECT_EQ(parse_fill_method("linear"), FillMethod::Linear);
  expect_error([] { parse_fill_method("zero"); }, "fill method 'zero': unknown; expected none, ffill or linear");
}

TEST(Csv, ErrorsNameFileLineAndColumn) {
  const std::string f = "bad.csv";
  expect_error([&] { parse_csv("date,a\n2020-01-01,1\n2020-01-02,abc\n", f); },
               "bad.csv:3:a: cannot read 'abc' as a number; expected a decimal number");
  expect_error([&] { parse_csv("date,a\n2020-01-01,1\n2020-01-02,inf\n", f); }, "bad.csv:3:a: 'inf' is not finite");
  expect_error([&] { parse_csv("date,a,b\n2020-01-01,1,2\n2020-01-02,3\n", f); },
               "bad.csv:3: 2 fields; expected 3 as in the header");
  expect_error([&] { parse_csv("date,a\n2020-01-01,1\n2020-01-01,2\n", f); },
               "bad.csv:3:date: duplicated timestamp 2020-01-01 (also on line 2); expected strictly increasing times");
  expect_error([&] { parse_csv("date,a\n2020-01-01,1\n2020-01-03,2\n2020-01-02,3\n", f); },
               "bad.csv:4:date: timestamp 2020-01-02 comes before 2020-01-03 on line 3; expected rows sorted by time");
  expect_error([&] { parse_csv("date,a\n2020-01-01,1\n2020-13-01,2\n", f); },
               "bad.csv:3:date: '2020-13-01': month 13 out of range");
  expect_error([&] { parse_csv("date,a\n2019-02-28,1\n2019-02-29,2\n", f); },
               "bad.csv:3:date: '2019-02-29': day 29 out of range for 2019-2");
  expect_error([&] { parse_csv("date,a\n2020-01-01,1\nNA,2\n", f); }, "bad.csv:3:date: missing timestamp 'NA'");
  expect_error([&] { parse_csv("date,a\n2020-01-01,1\n01/02/2020,2\n", f); },
               "bad.csv:3:date: '01/02/2020' is written differently from the first row ('2020-01-01')");
  expect_error([&] { parse_csv("date,a\n13/01/2020,1\n01/13/2020,2\n", f); },
               "bad.csv:3:date: '01/13/2020' contradicts the day/month order of earlier rows");
  expect_error([&] { parse_csv("date,a\n2020-01-01T00:00Z,1\n2020-01-02T00:00+01:00,2\n", f); }, "bad.csv:3:date: time zone");
  expect_error([&] { parse_csv("date,a\n2020-01-01 00:00,1\n2020-01-01 00:0x,2\n", f); },
               "bad.csv:3:date: cannot read '2020-01-01 00:0x' as a date");
  expect_error([&] { parse_csv("x,y\n1,2\n3,4\n", f); }, "bad.csv: no date/time column found among 'x', 'y'");
  expect_error([&] { parse_csv("date,a\n2020-01-01,1\n", f, date_col("time")); },
               "bad.csv: no column named 'time' (the date column asked for); expected one of 'date', 'a'");
  expect_error([&] { parse_csv("2020-01-01,1\n2020-01-02,2\n", f); },
               "bad.csv:1: the first row looks like data ('2020-01-01', ...); expected a header row");
  expect_error([&] { parse_csv("date,a\n2020-01-01,\"1\n", f); }, "bad.csv:2: unterminated quoted field");
  expect_error([&] { parse_csv("date,a\n2020-01-01,\"1\"x\n", f); }, "bad.csv:2: text after a closing quote");
  expect_error([&] { parse_csv("", f); }, "bad.csv: empty file");
  expect_error([&] { parse_csv("date,a\n", f); }, "bad.csv: no data rows");
  expect_error([&] { parse_csv("date,a,a\n2020-01-01,1,2\n", f); }, "bad.csv:1: column name 'a' appears twice");
  expect_error([&] { parse_csv("date\n2020-01-01\n", f); }, "bad.csv:1: no separator in the header");
  expect_error([] { read_csv("/nonexistent/dir/x.csv"); }, "/nonexistent/dir/x.csv: cannot open (");
}

TEST(Csv, ProtocolErrorsOnSmallFiles) {
  std::string text = "date,a,b\n";
  for (int d = 1; d <= 10; ++d) text += "2020-01-" + std::string(d < 10 ? "0" : "") + std::to_string(d) + ",1,2\n";
  CsvTable t = parse_csv(text, "small.csv");
  ProtocolOptions o;
  o.seq_len = 4;
  o.label_len = 2;
  o.pred_len = 4;
  o.target = "XX";
  expect_error([&] { ForecastData(t, o); }, "small.csv: unknown target 'XX'; expected one of 'a', 'b'");
  o.target = "date";
  expect_error([&] { ForecastData(t, o); }, "(that is the date column)");
  o.target = "";
  // 10 rows, custom split: train 7 rows < seq_len + pred_len = 8.
  expect_error([&] { ForecastData(t, o); },
               "small.csv: too few rows for seq_len + pred_len = 8 in the train split (rows 0..6 of 10");
  o.seq_len = 2;
  o.pred_len = 1;
  // train [0,7) ok; val [5, 8): 3 rows = 2 + 1 ok; test [6, 10) ok.
  ForecastData ok(t, o);
  EXPECT_EQ(ok.split(Split::Val).size(), 1);
  o.pred_len = 2;
  expect_error([&] { ForecastData(t, o); }, "in the val split (rows 5..7 of 10");
  // An ETT name selects the 12/4/4-month split, which needs 14400 rows.
  expect_error([&] { ForecastData(parse_csv(text, "tiny/ETTh1.csv"), o); },
               "tiny/ETTh1.csv: 10 rows; the ETT hourly (12/4/4 months) split needs 14400");
  o.label_len = 3;
  expect_error([&] { ForecastData(t, o); }, "small.csv: seq_len 2, label_len 3, pred_len 2; expected");
}
