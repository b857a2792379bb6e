// ssm-classify: image classification with the GroupMamba and SiMBA models (vision library). Subcommands
// predict (top-k labels for images and folders), train (from scratch on idx files or an ImageFolder, with
// exact --resume) and eval (accuracy, per-class accuracy, confusion-matrix PNG). This file only parses flags
// (CLI11) and maps errors to exit codes; the commands are in commands.cpp and predict.cpp.
#include <CLI/CLI.hpp>
#include <omp.h>

#include <cstdio>
#include <string>

#include "commands.h"
#include "ssmkit/core/error.h"

int main(int argc, char** argv) {
  using namespace ssmkit;
  using classify_app::CommonArgs;
  CLI::App app{
      "Classify images with GroupMamba / SiMBA models, train them from scratch and evaluate them.\n"
      "examples:\n"
      "  ssm-classify predict --model groupmamba-t --weights groupmamba_tiny_ema.pth photo.jpg\n"
      "  ssm-classify train --data fashion_mnist --test fashion_mnist --model groupmamba-micro --epochs 22 "
      "--out fm.safetensors\n"
      "  ssm-classify eval --model fm.safetensors --data fashion_mnist --confusion confusion.png"};
  app.require_subcommand(1);
  CommonArgs common;
  int threads = 0;
  auto add_common = [&](CLI::App* s) {
    s->add_option("--threads", threads,
                  "OpenMP threads (default: all cores; on a machine busy with other jobs 1 thread, or "
                  "OMP_WAIT_POLICY=passive in the environment, avoids slow spin-waiting)");
    s->add_flag("--json", common.json, "print the result as one JSON object on stdout");
    s->add_flag("--quiet", common.quiet, "no progress on stderr");
  };

  // predict
  classify_app::PredictArgs pa;
  CLI::App* predict = app.add_subcommand("predict", "top-k classes of images (files, or folders searched recursively)");
  predict->footer(
      "example: ssm-classify predict --model groupmamba-t --weights groupmamba_tiny_ema.pth --topk 3 photos/");
  predict->add_option("--model", pa.model,
                      "model name (groupmamba-t, simba-s, groupmamba-micro, ...); optional for "
                      "ssmkit model files, which name their model");
  predict
      ->add_option("--weights", pa.weights,
                   "weights: .safetensors (ssm-classify train, ssm-convert) or an official "
                   ".pth")
      ->required();
  predict->add_option("--labels", pa.labels,
                      "class names, one per line (default: the file's, or ImageNet's for 1000 classes)");
  predict->add_option("--topk", pa.topk, "classes per image")->capture_default_str()->check(CLI::PositiveNumber);
  predict->add_option("--batch", pa.batch, "images per forward pass (default 256 for small inputs, 16 for 224x224)");
  predict->add_flag("--csv", pa.csv, "CSV on stdout: path,rank,class_index,label,probability");
  predict->add_flag("--no-ema", pa.no_ema, ".pth with both: use 'model' instead of 'model_ema'");
  predict->add_flag("--ignore-objects", pa.ignore_objects,
               "trusted .pth files only: treat objects next to the weights (a training config, numpy scalars) as "
               "inert placeholders instead of refusing the file (they are never imported or run)");
  predict->add_option("images", pa.inputs, "image files (JPEG, PNG, BMP, TIFF, WebP) and folders")->required();
  predict->add_option("--out", common.out, "write the results to this file (atomically) instead of stdout");
  add_common(predict);

  // train
  vision::TrainClassifierOptions to;
  CLI::App* train = app.add_subcommand("train", "train a classifier from scratch (idx files or ImageFolder)");
  train->footer(
      "example: ssm-classify train --data ../shared/data/vision/fashion_mnist --test "
      "../shared/data/vision/fashion_mnist --model groupmamba-micro --epochs 22 --out fm.safetensors\n"
      "(an interrupted run continues with the same command plus --resume fm.train.safetensors)");
  train->add_option("--data", to.data, "training data: a folder of idx files (train split) or an ImageFolder root")
      ->required();
  train->add_option("--test", to.test, "test data (idx: the t10k split), evaluated after every epoch");
  train->add_option("--model", to.model, "model name")->capture_default_str();
  train->add_option("--epochs", to.epochs, "epochs")->capture_default_str();
  train->add_option("--out", to.out, "model file to write at the end (safetensors with metadata)")->required();
  train->add_option("--resume", to.resume, "training checkpoint to continue from exactly (same settings)");
  train->add_option("--checkpoint", to.checkpoint, "training checkpoint path (default: OUT with .train.safetensors)");
  train->add_option("--checkpoint-every", to.checkpoint_every, "also checkpoint every N steps (0: epoch ends only)");
  train->add_option("--batch", to.batch, "batch size")->capture_default_str();
  train->add_option("--lr", to.lr, "peak learning rate (AdamW)")->capture_default_str();
  train->add_option("--weight-decay", to.weight_decay, "AdamW weight decay (not on norms, biases, A_logs, Ds)")
      ->capture_default_str();
  train->add_option("--warmup-epochs", to.warmup_epochs, "linear warmup, in epochs (stepped per batch)")
      ->capture_default_str();
  train->add_option("--warmup-lr", to.warmup_lr, "learning rate at the start of the warmup")->capture_default_str();
  train->add_option("--min-lr", to.min_lr, "floor of the cosine schedule")->capture_default_str();
  train->add_option("--label-smoothing", to.label_smoothing, "cross-entropy label smoothing")->capture_default_str();
  train->add_option("--drop-path", to.drop_path,
                    "stochastic depth rate (default: the model's, 0.05 for the micro models)");
  train->add_option("--clip-grad", to.clip_grad, "clip the global gradient norm (0: off)")->capture_default_str();
  train->add_option("--shards", to.shards,
                    "data-parallel shards per batch, trained at once on their own threads (default: one per thread); "
                    "results depend on the shard count, not on --threads; 1 = the plain loop")
      ->check(CLI::NonNegativeNumber);
  train->add_option("--pad", to.augment.pad, "random crop: zero padding in pixels (0: off)")->capture_default_str();
  train->add_flag("--flip,!--no-flip", to.augment.flip, "random horizontal flip (default on)");
  train->add_option("--erase-prob", to.augment.erase_prob, "random erasing probability (timm RandomErasing)")
      ->capture_default_str();
  train->add_option("--erase-mode", to.augment.erase_mode, "random erasing fill: const, rand or pixel")
      ->capture_default_str();
  train->add_option("--val-split", to.val_split, "fraction of the training data held out for validation")
      ->capture_default_str();
  train->add_option("--labels", to.labels_file, "class names, one per line (default: the data's)");
  train->add_option("--limit", to.limit, "use only the first N training images (0: all)");
  train->add_option("--test-limit", to.test_limit, "use only the first N test images (0: all)");
  train->add_option("--stop-after", to.stop_after,
                    "stop (with a checkpoint) after N steps in total; continue with --resume");
  train->add_option("--eval-batch", to.eval_batch, "batch size of the evaluations")->capture_default_str();
  train->add_option("--log-every", to.log_every, "progress line every N steps")->capture_default_str();
  train->add_option("--seed", to.seed, "random seed (weights, drop path, data order, augmentation)")
      ->capture_default_str();
  add_common(train);

  // eval
  classify_app::EvalArgs ea;
  CLI::App* eval = app.add_subcommand("eval", "accuracy, per-class accuracy and confusion matrix on a labelled set");
  eval->footer(
      "example: ssm-classify eval --model fm.safetensors --data ../shared/data/vision/fashion_mnist "
      "--confusion confusion.png");
  eval->add_option("--model", ea.model, "model file (ssmkit .safetensors), or a model name with --weights")->required();
  eval->add_option("--weights", ea.weights, "weights when --model is a name");
  eval->add_option("--data", ea.data, "labelled data: idx files (the --split split) or an ImageFolder root")
      ->required();
  eval->add_option("--split", ea.split, "idx split: test (t10k) or train")->capture_default_str();
  eval->add_option("--labels", ea.labels, "class names, one per line (default: the model file's)");
  eval->add_option("--confusion", ea.confusion, "write the confusion matrix as a PNG picture here");
  eval->add_option("--batch", ea.batch, "images per forward pass (default 500 for small inputs, 16 for 224x224)");
  eval->add_option("--limit", ea.limit, "use only the first N images (0: all)");
  eval->add_flag("--no-ema", ea.no_ema, ".pth with both: use 'model' instead of 'model_ema'");
  eval->add_flag("--ignore-objects", ea.ignore_objects,
               "trusted .pth files only: treat objects next to the weights (a training config, numpy scalars) as "
               "inert placeholders instead of refusing the file (they are never imported or run)");
  eval->add_option("--out", common.out, "write the results to this file (atomically) instead of stdout");
  add_common(eval);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;
  }
  if (threads > 0) omp_set_num_threads(threads);
  for (int i = 0; i < argc; ++i) common.command += (i ? " " : "") + std::string(argv[i]);
  try {
    if (predict->parsed()) return classify_app::run_predict(pa, common);
    if (eval->parsed()) return classify_app::run_eval(ea, common);
    to.quiet = common.quiet;
    to.command = common.command;
    return classify_app::run_train(to, common);
  } catch (const core::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s (please report it with the command)\n", e.what());
    return 3;
  }
}
