// ssm-forecast bench: the protocol table. Trains and tests every dataset x horizon x model x seed with the
// recommended settings (flags override), appends one row per run to a CSV (rewritten atomically, so an
// interrupted bench resumes by skipping the runs already there), then prints MSE / MAE per dataset x
// horizon x model as mean and sample std over seeds, with an Avg row over the horizons, as markdown and CSV.
// Not here: training itself (ssmkit::timeseries::train_forecaster).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "forecast_app.h"
#include "ssmkit/core/error.h"
#include "ssmkit/core/io/sha256.h"
#include "ssmkit/core/io/safetensors.h"
#include "ssmkit/core/random.h"
#include "ssmkit/timeseries/forecast_checkpoint.h"
#include "ssmkit/timeseries/forecast_training.h"

namespace ssm_forecast {

using namespace ssmkit::timeseries;
using nlohmann::json;
using ssmkit::core::Error;
namespace fs = std::filesystem;

namespace {

const char* kRunHeader =
    "dataset,pred_len,model,seed,test_mse,test_mae,val_mse,best_epoch,epochs_done,epoch_seconds,seconds,lr,parameters,"
    "shards";
// Files written before data-parallel shards existed: every run was the plain loop (shards 1).
const char* kRunHeaderV1 =
    "dataset,pred_len,model,seed,test_mse,test_mae,val_mse,best_epoch,epochs_done,epoch_seconds,seconds,lr,parameters";

struct Run {
  std::string dataset, model;
  int64_t pred_len = 0;
  uint64_t seed = 0;
  double test_mse = NAN, test_mae = NAN, val_mse = NAN, epoch_seconds = 0, seconds = 0, lr = 0;
  int64_t best_epoch = 0, epochs_done = 0, parameters = 0;
  int64_t shards = 1;  // data-parallel shards per batch (the arithmetic depends on it)

  std::string csv() const {
    char buf[512];
    std::snprintf(buf, sizeof buf, "%s,%lld,%s,%llu,%.6f,%.6f,%.6f,%lld,%lld,%.3f,%.1f,%g,%lld,%lld", dataset.c_str(),
                  static_cast<long long>(pred_len), model.c_str(), static_cast<unsigned long long>(seed), test_mse,
                  test_mae, val_mse, static_cast<long long>(best_epoch), static_cast<long long>(epochs_done),
                  epoch_seconds, seconds, lr, static_cast<long long>(parameters), static_cast<long long>(shards));
    return buf;
  }
};

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string cell;
  while (std::getline(ss, cell, ',')) out.push_back(cell);
  return out;
}

std::vector<Run> read_runs(const std::string& path) {
  std::vector<Run> runs;
  std::ifstream in(path);
  if (!in.good()) return runs;
  std::string line;
  int64_t lineno = 0;
  size_t cells = 14;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (lineno == 1) {
      SSMKIT_CHECK(line == kRunHeader || line == kRunHeaderV1, path, ":1: header \"", line, "\"; expected \"",
                   kRunHeader, "\" (a bench CSV written by ssm-forecast, or a new path)");
      if (line == kRunHeaderV1) cells = 13;
      continue;
    }
    const std::vector<std::string> c = split_csv_line(line);
    SSMKIT_CHECK(c.size() == cells, path, ":", lineno, ": ", c.size(), " cells; expected ", cells);
    try {
      Run r;
      r.dataset = c[0];
      r.pred_len = std::stoll(c[1]);
      r.model = c[2];
      r.seed = std::stoull(c[3]);
      r.test_mse = std::stod(c[4]);
      r.test_mae = std::stod(c[5]);
      r.val_mse = std::stod(c[6]);
      r.best_epoch = std::stoll(c[7]);
      r.epochs_done = std::stoll(c[8]);
      r.epoch_seconds = std::stod(c[9]);
      r.seconds = std::stod(c[10]);
      r.lr = std::stod(c[11]);
      r.parameters = std::stoll(c[12]);
      if (cells == 14) r.shards = std::stoll(c[13]);
      runs.push_back(r);
    } catch (const std::exception&) {
      throw Error(path + ":" + std::to_string(lineno) + ": malformed row; expected numbers after dataset/model");
    }
  }
  return runs;
}

void write_runs(const std::string& path, const std::vector<Run>& runs) {
  std::string text = std::string(kRunHeader) + "\n";
  for (const Run& r : runs) text += r.csv() + "\n";
  ssmkit::core::write_file_atomic(path, text.data(), text.size());
}

// Known dataset names -> files under the data dir (layout of ../shared/data/timeseries); anything ending in
// .csv is taken as a path.
std::string dataset_path(const std::string& dir, const std::string& name) {
  if (name.size() > 4 && name.compare(name.size() - 4, 4, ".csv") == 0) return name;
  if (name == "ETTh1" || name == "ETTh2" || name == "ETTm1" || name == "ETTm2") return dir + "/ett/" + name + ".csv";
  if (name == "weather") return dir + "/weather/weather.csv";
  if (name == "exchange_rate" || name == "exchange") return dir + "/exchange_rate/exchange_rate.csv";
  throw Error("--datasets: unknown dataset '" + name +
              "'; expected ETTh1, ETTh2, ETTm1, ETTm2, weather, exchange_rate or a path to a .csv file");
}

std::string default_data_dir() {
  if (const char* env = std::getenv("SSMKIT_DATA_DIR"); env && *env) return std::string(env) + "/timeseries";
  return "../shared/data/timeseries";
}

struct Stat {
  double mean = NAN, std = NAN;
  int n = 0;
};
Stat stat_of(const std::vector<double>& v) {
  Stat s;
  s.n = static_cast<int>(v.size());
  if (v.empty()) return s;
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  if (v.size() > 1) {
    double q = 0;
    for (double x : v) q += (x - s.mean) * (x - s.mean);
    s.std = std::sqrt(q / static_cast<double>(v.size() - 1));
  }
  return s;
}

std::string cell(const Stat& s) {
  if (s.n == 0) return "-";
  char buf[48];
  if (s.n > 1)
    std::snprintf(buf, sizeof buf, "%.3f±%.3f", s.mean, s.std);
  else
    std::snprintf(buf, sizeof buf, "%.3f", s.mean);
  return buf;
}

}  // namespace

int run_bench(const CommonFlags& c, const BenchFlags& b) {
  try {
    SSMKIT_CHECK(!b.datasets.empty() && !b.horizons.empty() && !b.models.empty() && !b.seeds.empty(),
                 "bench: --datasets, --horizons, --models and --seeds must each name at least one value");
    const std::string dir = b.data_dir.empty() ? default_data_dir() : b.data_dir;
    std::vector<Run> runs = read_runs(b.csv);
    std::set<std::tuple<std::string, int64_t, std::string, uint64_t>> done;
    for (const Run& r : runs) done.insert({r.dataset, r.pred_len, r.model, r.seed});
    if (!b.models_dir.empty()) fs::create_directories(b.models_dir);
    if (!b.checkpoint_dir.empty()) fs::create_directories(b.checkpoint_dir);
    const int64_t total =
        static_cast<int64_t>(b.datasets.size() * b.horizons.size() * b.models.size() * b.seeds.size());
    int64_t index = 0, failures = 0;

    for (const std::string& ds : b.datasets) {
      const std::string path = dataset_path(dir, ds);
      const std::string name = fs::path(path).stem().string();
      CsvOptions csv;
      csv.strict_time = false;  // TSLib never checks; weather.csv repeats a timestamp
      std::unique_ptr<CsvTable> table;
      std::string sha;
      for (int64_t H : b.horizons) {
        for (const std::string& model : b.models) {
          for (uint64_t seed : b.seeds) {
            ++index;
            if (done.count({name, H, model, seed})) continue;
            try {
              if (!table) {
                table = std::make_unique<CsvTable>(read_csv(path, csv));
                sha = ssmkit::core::sha256_file(path);
              }
              ProtocolOptions proto;
              proto.seq_len = b.seq_len;
              proto.label_len = std::min<int64_t>(48, b.seq_len);
              proto.pred_len = H;
              ForecastData data(*table, proto);
              const Recommendation rec = recommended_defaults(model, name, H);
              const json cfg = model_config(model, rec, b.train);
              ssmkit::core::manual_seed(seed);
              auto m = make_forecast_model(model, forecast_dims(data), cfg, ssmkit::core::global_rng());
              ForecastTrainOptions o;
              o.lr = b.train.lr > 0 ? b.train.lr : rec.lr;
              o.epochs = b.train.epochs >= 0 ? b.train.epochs : rec.epochs;
              o.batch = b.train.batch > 0 ? b.train.batch : rec.batch;
              o.patience = b.train.patience;
              o.lradj = parse_lr_adjust(b.train.lradj);
              o.drop_last = b.train.drop_last >= 0 ? b.train.drop_last != 0 : rec.drop_last;
              o.seed = seed;
              o.csv = csv;
              o.quiet = c.quiet;
              o.log_every = b.train.log_every;
              o.shards = b.train.shards;
              const std::string run_stem = name + "_" + std::to_string(H) + "_" + model + "_" + std::to_string(seed);
              if (!b.models_dir.empty()) o.out = b.models_dir + "/" + run_stem + ".safetensors";
              if (!b.checkpoint_dir.empty()) {
                // Resumable runs: the trainer checks that a found checkpoint has this run's settings and data.
                o.checkpoint = b.checkpoint_dir + "/" + run_stem + ".train.safetensors";
                o.checkpoint_every = b.checkpoint_every;
                if (fs::exists(o.checkpoint)) o.resume = o.checkpoint;
              }
              o.training_extra = {{"command", c.command}, {"data_sha256", sha}, {"data_file", path}};
              if (!c.quiet)
                std::fprintf(stderr, "[%lld/%lld] %s H=%lld %s seed %llu: lr %g, %s\n", static_cast<long long>(index),
                             static_cast<long long>(total), name.c_str(), static_cast<long long>(H), model.c_str(),
                             static_cast<unsigned long long>(seed), o.lr, cfg.dump().c_str());
              ForecastTrainResult r = train_forecaster(*m, data, o);
              Run run;
              run.dataset = name;
              run.pred_len = H;
              run.model = model;
              run.seed = seed;
              run.test_mse = r.test.mse;
              run.test_mae = r.test.mae;
              run.val_mse = r.val.mse;
              run.best_epoch = r.best_epoch;
              run.epochs_done = r.epochs_done;
              run.epoch_seconds = r.epoch_seconds;
              run.seconds = r.seconds;
              run.lr = o.lr;
              run.parameters = m->num_parameters();
              run.shards = r.training.is_object() ? r.training.value("data_parallel_shards", int64_t{1}) : 1;
              runs.push_back(run);
              write_runs(b.csv, runs);
              if (!c.quiet)
                std::fprintf(stderr, "[%lld/%lld] %s H=%lld %s seed %llu: test MSE %.4f MAE %.4f (%.0f s)\n",
                             static_cast<long long>(index), static_cast<long long>(total), name.c_str(),
                             static_cast<long long>(H), model.c_str(), static_cast<unsigned long long>(seed),
                             run.test_mse, run.test_mae, run.seconds);
            } catch (const Error& e) {
              ++failures;
              std::fprintf(stderr, "error: %s H=%lld %s seed %llu: %s\n", name.c_str(), static_cast<long long>(H),
                           model.c_str(), static_cast<unsigned long long>(seed), e.what());
            }
          }
        }
      }
    }

    // The table: (dataset, H, model) -> per-seed values, in the order asked for.
    std::map<std::tuple<std::string, int64_t, std::string>, std::map<uint64_t, std::pair<double, double>>> by_cell;
    for (const Run& r : runs) by_cell[{r.dataset, r.pred_len, r.model}][r.seed] = {r.test_mse, r.test_mae};
    std::set<uint64_t> want_seeds(b.seeds.begin(), b.seeds.end());
    std::string seeds_text;
    for (uint64_t s : b.seeds) seeds_text += (seeds_text.empty() ? "" : ",") + std::to_string(s);
    std::string md, summary = "dataset,pred_len,model,n_seeds,mse_mean,mse_std,mae_mean,mae_std\n";
    json results = json::array();
    auto add_summary = [&](const std::string& ds, const std::string& h, const std::string& m, const Stat& mse,
                           const Stat& mae) {
      char buf[256];
      std::snprintf(buf, sizeof buf, "%s,%s,%s,%d,%.6f,%.6f,%.6f,%.6f\n", ds.c_str(), h.c_str(), m.c_str(), mse.n,
                    mse.mean, mse.std, mae.mean, mae.std);
      summary += buf;
      results.push_back({{"dataset", ds},
                         {"pred_len", h},
                         {"model", m},
                         {"n_seeds", mse.n},
                         {"mse", std::isfinite(mse.mean) ? json(mse.mean) : json(nullptr)},
                         {"mse_std", std::isfinite(mse.std) ? json(mse.std) : json(nullptr)},
                         {"mae", std::isfinite(mae.mean) ? json(mae.mean) : json(nullptr)},
                         {"mae_std", std::isfinite(mae.std) ? json(mae.std) : json(nullptr)}});
    };
    for (const std::string& ds_arg : b.datasets) {
      const std::string ds = fs::path(dataset_path(dir, ds_arg)).stem().string();
      md += "### " + ds + " (look-back " + std::to_string(b.seq_len) + ", test MSE / MAE, mean ± std over seeds " +
            seeds_text + ")\n\n| H |";
      std::string rule = "| --- |";
      for (const std::string& m : b.models) md += " " + m + " |", rule += " --- |";
      md += "\n" + rule + "\n";
      // per model: per seed sums over horizons for the Avg row
      std::map<std::string, std::map<uint64_t, std::pair<double, int>>> avg_mse, avg_mae;
      for (int64_t H : b.horizons) {
        md += "| " + std::to_string(H) + " |";
        for (const std::string& m : b.models) {
          std::vector<double> mse, mae;
          auto it = by_cell.find({ds, H, m});
          if (it != by_cell.end())
            for (const auto& [seed, v] : it->second) {
              if (!want_seeds.count(seed)) continue;
              mse.push_back(v.first);
              mae.push_back(v.second);
              avg_mse[m][seed].first += v.first, avg_mse[m][seed].second += 1;
              avg_mae[m][seed].first += v.second, avg_mae[m][seed].second += 1;
            }
          const Stat s1 = stat_of(mse), s2 = stat_of(mae);
          md += " " + cell(s1) + " / " + cell(s2) + " |";
          add_summary(ds, std::to_string(H), m, s1, s2);
        }
        md += "\n";
      }
      md += "| Avg |";
      for (const std::string& m : b.models) {
        std::vector<double> mse, mae;  // per seed, only seeds with every horizon
        for (const auto& [seed, v] : avg_mse[m])
          if (v.second == static_cast<int>(b.horizons.size())) {
            mse.push_back(v.first / v.second);
            mae.push_back(avg_mae[m][seed].first / v.second);
          }
        const Stat s1 = stat_of(mse), s2 = stat_of(mae);
        md += " " + cell(s1) + " / " + cell(s2) + " |";
        add_summary(ds, "Avg", m, s1, s2);
      }
      md += "\n\n";
    }
    if (!c.out.empty()) ssmkit::core::write_file_atomic(c.out, md.data(), md.size());
    std::string summary_path = b.summary_csv;
    if (summary_path.empty()) {
      fs::path p(b.csv);
      summary_path = (p.parent_path() / (p.stem().string() + ".summary.csv")).string();
    }
    ssmkit::core::write_file_atomic(summary_path, summary.data(), summary.size());
    if (c.json)
      std::printf("%s\n", json{{"command", c.command},
                               {"model", "bench"},
                               {"metrics", {{"runs", runs.size()}, {"failures", failures}}},
                               {"results", results}}
                              .dump(2)
                              .c_str());
    else
      std::printf("%s", md.c_str());
    return failures > 0 ? 2 : 0;
  } catch (...) {
    return report_exception();
  }
}

}  // namespace ssm_forecast
