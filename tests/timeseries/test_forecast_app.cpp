// The ssm-forecast program end to end (the binary next to this test: <build>/bin/ssm-forecast; skipped when
// the apps are not built): --help with an example on every subcommand, exit codes 0 / 1 / 2 with one-line
// "error: <file>..." messages, train -> eval -> predict (CSV dates and columns, PNG) on a small generated
// CSV, and a bench that resumes by skipping the runs already in its CSV.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "ssmkit/timeseries/datetime.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

fs::path app_path() { return fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "bin" / "ssm-forecast"; }

#define REQUIRE_APP()                                                                                     \
  if (!fs::exists(app_path())) {                                                                          \
    GTEST_SKIP() << "ssm-forecast not built (" << app_path() << "); configure with SSMKIT_BUILD_APPS=ON"; \
  }

struct Result {
  int rc = -1;
  std::string out, err;
};

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs ssm-forecast with `args` (one thread: the models here are tiny), capturing stdout and stderr.
Result run(const fs::path& dir, const std::string& args) {
  const fs::path out = dir / "stdout.txt", err = dir / "stderr.txt";
  const std::string cmd = "cd '" + dir.string() + "' && '" + app_path().string() + "' " + args + " --threads 1 > '" +
                          out.string() + "' 2> '" + err.string() + "'";
  const int status = std::system(cmd.c_str());
  Result r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_all(out);
  r.err = read_all(err);
  return r;
}

// Same, for help/usage calls that take no --threads.
Result run_raw(const fs::path& dir, const std::string& args) {
  const fs::path out = dir / "stdout.txt", err = dir / "stderr.txt";
  const std::string cmd = "cd '" + dir.string() + "' && '" + app_path().string() + "' " + args + " > '" + out.string() +
                          "' 2> '" + err.string() + "'";
  const int status = std::system(cmd.c_str());
  Result r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_all(out);
  r.err = read_all(err);
  return r;
}

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("ssmkit_forecast_app_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// 500 hourly rows from 2022-01-01 00:00 of three daily-periodic columns (the last, "OT", is the target).
void write_series(const fs::path& p, int rows = 500) {
  std::ofstream out(p);
  out << "date,load,temp,OT\n";
  char buf[128];
  for (int r = 0; r < rows; ++r) {
    const double t = r;
    std::snprintf(buf, sizeof buf, ",%.5f,%.5f,%.5f\n", 50 + 10 * std::sin(2 * M_PI * t / 24),
                  5 + std::cos(2 * M_PI * t / 24), 20 + 3 * std::sin(2 * M_PI * (t + 3) / 24) + 0.01 * t);
    out << ssmkit::timeseries::format_iso(1640995200LL * 1000000 + r * 3600LL * 1000000) << buf;
  }
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  std::string l;
  while (std::getline(ss, l)) v.push_back(l);
  return v;
}

}  // namespace

TEST(ForecastApp, HelpAndUsageErrors) {
  REQUIRE_APP();
  const fs::path dir = temp_dir("help");
  for (const char* sub : {"train", "eval", "predict", "bench", "defaults"}) {
    Result r = run_raw(dir, std::string(sub) + " --help");
    EXPECT_EQ(r.rc, 0) << sub;
    EXPECT_NE(r.out.find("example: ssm-forecast " + std::string(sub)), std::string::npos) << sub << ": " << r.out;
  }
  Result missing = run_raw(dir, "train --model dlinear");  // no --csv
  EXPECT_EQ(missing.rc, 1);
  EXPECT_NE(missing.err.find("--csv is required"), std::string::npos) << missing.err;
  EXPECT_EQ(run_raw(dir, "eval --csv x.csv --model m.safetensors --no-such-flag").rc, 1);
  EXPECT_EQ(run_raw(dir, "").rc, 1);
  Result d = run_raw(dir, "defaults");
  EXPECT_EQ(d.rc, 0);
  EXPECT_NE(d.out.find("| smamba | ETTh1 | 96 | 7e-05 |"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("| chimera | ETTm1 | (any) | 0.0005 | 32 | 10 | no | {\"d_model\":32,\"use_marks\":true} |"), std::string::npos)
      << d.out;
  EXPECT_NE(d.out.find("| chimera | (other) | (any) | 0.001 |"), std::string::npos) << d.out;
  fs::remove_all(dir);
}

TEST(ForecastApp, TrainEvalPredict) {
  REQUIRE_APP();
  const fs::path dir = temp_dir("e2e");
  write_series(dir / "series.csv");
  Result tr = run(dir,
                  "train --csv series.csv --model dlinear --seq-len 48 --pred-len 24 --epochs 2 --lr 1e-3 "
                  "--out m.safetensors --checkpoint ck.safetensors --json --quiet");
  ASSERT_EQ(tr.rc, 0) << tr.err;
  EXPECT_EQ(tr.err, "");  // --quiet
  json j = json::parse(tr.out);
  EXPECT_EQ(j.at("model"), "dlinear");
  const double test_mse = j.at("metrics").at("test").at("mse").get<double>();
  EXPECT_TRUE(std::isfinite(test_mse));
  EXPECT_EQ(j.at("metrics").at("test").at("windows"), static_cast<int>(500 * 0.2) - 24 + 1);
  EXPECT_TRUE(fs::exists(dir / "m.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "ck.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "ck.best.safetensors"));

  Result ev = run(dir, "eval --model m.safetensors --csv series.csv --json");
  ASSERT_EQ(ev.rc, 0) << ev.err;
  EXPECT_DOUBLE_EQ(json::parse(ev.out).at("metrics").at("mse").get<double>(), test_mse);
  Result evt = run(dir, "eval --model m.safetensors --csv series.csv");
  EXPECT_NE(evt.out.find("test MSE"), std::string::npos) << evt.out;

  // Forecast after the last row (2022-01-21 19:00): 24 hourly dates, the three columns, and a PNG.
  Result pr = run(dir, "predict --model m.safetensors --csv series.csv --out fc.csv --plot fc.png");
  ASSERT_EQ(pr.rc, 0) << pr.err;
  std::vector<std::string> rows = lines_of(read_all(dir / "fc.csv"));
  ASSERT_EQ(rows.size(), 25u);
  EXPECT_EQ(rows[0], "date,load,temp,OT");
  EXPECT_EQ(rows[1].substr(0, 20), "2022-01-21 20:00:00,");
  EXPECT_EQ(rows[24].substr(0, 20), "2022-01-22 19:00:00,");
  const double load = std::stod(rows[1].substr(20, rows[1].find(',', 20) - 20));
  EXPECT_GT(load, 30.0);  // original units (the column swings 40..60), not standardized ones
  EXPECT_LT(load, 70.0);
  const std::string png = read_all(dir / "fc.png");
  ASSERT_GT(png.size(), 8u);
  EXPECT_EQ(png.substr(1, 3), "PNG");
  Result pj = run(dir, "predict --model m.safetensors --csv series.csv --json");
  ASSERT_EQ(pj.rc, 0) << pj.err;
  EXPECT_EQ(json::parse(pj.out).at("results").size(), 24u);

  // Bad inputs: exit 2 and one "error: <file>..." line.
  std::ofstream(dir / "bad.safetensors") << "not a model";
  Result bad = run(dir, "eval --model bad.safetensors --csv series.csv");
  EXPECT_EQ(bad.rc, 2);
  EXPECT_EQ(bad.err.rfind("error: bad.safetensors", 0), 0u) << bad.err;
  EXPECT_EQ(lines_of(bad.err).size(), 1u) << bad.err;
  Result nofile = run(dir, "train --csv nothere.csv --model dlinear --out x.safetensors");
  EXPECT_EQ(nofile.rc, 2);
  EXPECT_NE(nofile.err.find("error: nothere.csv"), std::string::npos) << nofile.err;
  Result ck = run(dir, "predict --model ck.safetensors --csv series.csv");
  EXPECT_EQ(ck.rc, 2);
  EXPECT_NE(ck.err.find("training checkpoint"), std::string::npos) << ck.err;
  Result unknown = run(dir, "train --csv series.csv --model prophet --seq-len 48 --pred-len 24 --out x.safetensors");
  EXPECT_EQ(unknown.rc, 2);
  EXPECT_NE(unknown.err.find("prophet"), std::string::npos) << unknown.err;
  fs::remove_all(dir);
}

TEST(ForecastApp, BenchResumesFromItsCsv) {
  REQUIRE_APP();
  const fs::path dir = temp_dir("bench");
  write_series(dir / "series.csv", 400);
  const std::string args =
      "bench --datasets series.csv --horizons 12,24 --models seasonal-naive,dlinear --seeds 1 "
      "--seq-len 24 --epochs 1 --lr 1e-3 --out table.md --csv runs.csv --quiet";
  Result b1 = run(dir, args);
  ASSERT_EQ(b1.rc, 0) << b1.err;
  std::vector<std::string> runs = lines_of(read_all(dir / "runs.csv"));
  ASSERT_EQ(runs.size(), 5u);  // header + 2 horizons x 2 models
  const std::string table = read_all(dir / "table.md");
  EXPECT_NE(table.find("| H | seasonal-naive | dlinear |"), std::string::npos) << table;
  EXPECT_NE(table.find("| Avg |"), std::string::npos) << table;
  EXPECT_EQ(b1.out, table);
  EXPECT_TRUE(fs::exists(dir / "runs.summary.csv"));
  // A second call trains nothing new: the CSV is unchanged and the table the same.
  Result b2 = run(dir, args);
  ASSERT_EQ(b2.rc, 0) << b2.err;
  EXPECT_EQ(lines_of(read_all(dir / "runs.csv")), runs);
  EXPECT_EQ(read_all(dir / "table.md"), table);
  // Each row records its data-parallel shards (1 at --threads 1); a CSV from before that column (every run
  // the plain loop) is still read.
  EXPECT_EQ(runs[0].substr(runs[0].size() - 18), ",parameters,shards") << runs[0];
  std::string v1 = "dataset,pred_len,model,seed,test_mse,test_mae,val_mse,best_epoch,epochs_done,epoch_seconds,"
                   "seconds,lr,parameters\n";
  for (size_t i = 1; i < runs.size(); ++i) {
    ASSERT_EQ(runs[i].substr(runs[i].size() - 2), ",1") << runs[i];
    v1 += runs[i].substr(0, runs[i].size() - 2) + "\n";
  }
  std::ofstream(dir / "runs.csv") << v1;
  Result b3 = run(dir, args);
  ASSERT_EQ(b3.rc, 0) << b3.err;
  EXPECT_EQ(read_all(dir / "table.md"), table);
  fs::remove_all(dir);
}

// bench --checkpoint-dir: a run interrupted mid-training (here: a `train --stop-after` with the settings bench
// uses, writing the checkpoint where bench looks for it) continues from its checkpoint to the result of an
// uninterrupted run; a checkpoint of other settings is refused with its path, not silently reused.
TEST(ForecastApp, BenchRunResumesFromItsCheckpoint) {
  REQUIRE_APP();
  const fs::path dir = temp_dir("bench_ckpt");
  write_series(dir / "series.csv", 400);
  const std::string common = "--datasets series.csv --horizons 12 --models dlinear --seeds 1 --seq-len 24 --epochs 3 ";
  Result full = run(dir, "bench " + common + "--lr 1e-3 --out full.md --csv full.csv --quiet");
  ASSERT_EQ(full.rc, 0) << full.err;

  fs::create_directories(dir / "ck");
  Result part = run(dir,
                    "train --csv series.csv --model dlinear --seq-len 24 --label-len 24 --pred-len 12 --epochs 3 "
                    "--lr 1e-3 --seed 1 --checkpoint ck/series_12_dlinear_1.train.safetensors --stop-after 5 --quiet");
  ASSERT_EQ(part.rc, 0) << part.err;
  Result resumed = run(dir, "bench " + common + "--lr 1e-3 --out r.md --csv r.csv --checkpoint-dir ck");
  ASSERT_EQ(resumed.rc, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resumed from ck/series_12_dlinear_1.train.safetensors at epoch 1 step 5"),
            std::string::npos)
      << resumed.err;
  // Same metrics, best epoch and epochs (the timing cells differ).
  auto metrics = [](const std::string& row) {
    std::vector<std::string> c;
    std::stringstream ss(row);
    std::string cell;
    while (std::getline(ss, cell, ',')) c.push_back(cell);
    return std::vector<std::string>(c.begin(), c.begin() + 9);
  };
  const std::vector<std::string> a = lines_of(read_all(dir / "full.csv")), b = lines_of(read_all(dir / "r.csv"));
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(metrics(a[1]), metrics(b[1]));

  // Other settings (lr) with the same checkpoint folder: the run fails naming the checkpoint, nothing is added.
  Result other = run(dir, "bench " + common + "--lr 2e-3 --out o.md --csv o.csv --checkpoint-dir ck --quiet");
  EXPECT_EQ(other.rc, 2);
  EXPECT_NE(other.err.find("ck/series_12_dlinear_1.train.safetensors"), std::string::npos) << other.err;
  EXPECT_LE(lines_of(read_all(dir / "o.csv")).size(), 1u);  // no run row (at most a header)
  fs::remove_all(dir);
}
