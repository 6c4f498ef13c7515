// lepard-train: trains the LEPARD network on a dataset with pseudo-labels from
// lepard-prepare (docs/training.md).
#include <lepard/train/config.h>
#include <lepard/train/distributed.h>
#include <lepard/train/trainer.h>
#include <lepard/data/sample.h>
#include <lepard/io/atomic_file.h>

#include "cli/cli.h"

#include <ATen/Context.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

namespace fs = std::filesystem;
using namespace lepard;

namespace {

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

fs::path checkpoint_file(const std::string& resume) {
  const fs::path p(resume);
  return fs::is_directory(p) ? p / "checkpoint.pt" : p;
}

}  // namespace

int main(int argc, char** argv) {
  cli::tune_runtime(argv);
  cli::init_logging();
  std::string config_path, resume, device;
  std::vector<std::string> sets;
  int64_t threads = 0, stop_after = -1;
  train::DistributedOptions dist;
  dist.rank = -1;
  dist.world_size = 0;
  dist.master_addr = "";
  dist.master_port = 0;
  bool print_config = false;
  train::TrainConfig defaults;
  cli::Parser parser("lepard-train",
                     "Trains the LEPARD encoder-decoder (image -> camera + K deformable parts) from pseudo-labels:\n"
                     "image forces on the rendered parts become generalized forces on each part's parameters.");
  parser.flag("config", &config_path, "YAML configuration (configs/*.yaml); keys below")
      .flag("set", &sets, "override a key: --set train.lr=3e-4 (repeatable)")
      .flag("resume", &resume,
            "continue a run: its folder (train.out) or a checkpoint.pt; the checkpoint's "
            "configuration is used unless --config is given, --set still applies")
      .flag("threads", &threads, "intra-op threads (0: train.threads, whose 0 means every core)")
      .flag("device", &device, "cpu or cuda (default: train.device)")
      .flag("rank", &dist.rank, "this process's rank (default: $RANK or 0)")
      .flag("world-size", &dist.world_size, "number of processes (default: $WORLD_SIZE or 1)")
      .flag("master-addr", &dist.master_addr, "rendezvous address (default: $MASTER_ADDR or 127.0.0.1)")
      .flag("master-port", &dist.master_port, "rendezvous port (default: $MASTER_PORT or 29500)")
      .flag("timeout", &dist.timeout_s,
            "seconds to wait for the other processes at the rendezvous and in each "
            "collective; then an error naming the ranks waited for")
      .flag("stop-after", &stop_after,
            "stop (with a checkpoint) after this many steps; the schedule still "
            "spans train.steps, so --resume continues the same run")
      .flag("print-config", &print_config, "print the resolved configuration as YAML and exit")
      .epilog("Configuration keys (file sections data, model, loss, train; --set section.key=value):\n" +
              defaults.schema().help() +
              "\nExamples:\n"
              "  lepard-train --config configs/synthetic_horse.yaml\n"
              "  lepard-train --config configs/synthetic_horse.yaml --set train.steps=500 --set loss.collisions=false\n"
              "  lepard-train --resume runs/demo/train --set train.steps=4000\n"
              "  # two processes on one machine (Gloo), each with half of every batch:\n"
              "  lepard-train --config C --world-size 2 --rank 0 & lepard-train --config C --world-size 2 --rank 1\n"
              "Outputs in train.out: metrics.jsonl (one JSON line per log step and validation), checkpoint.pt\n"
              "(model, optimiser, step, configuration, seed), config.yaml and summary.json.\n"
              "Exit codes: 0 done, 2 bad flags or configuration, 3 NaN/Inf in the loss, 1 other errors.");
  parser.parse(argc, argv);

  train::TrainConfig config;
  try {
    auto schema = config.schema();
    std::string source = config_path;
    if (!config_path.empty()) {
      schema.load_file(config_path);
    } else if (!resume.empty()) {
      const auto ckpt = checkpoint_file(resume);
      schema.load_string(train::checkpoint_config(ckpt).first, ckpt.string());
      source = ckpt.string();
    } else {
      throw train::ConfigError("give --config FILE (or --resume RUN); lepard-train --help lists the keys");
    }
    for (const auto& s : sets) schema.set(s);
    if (!resume.empty()) {
      const auto ckpt = checkpoint_file(resume);
      // A resumed run writes where it is told: the folder of the checkpoint passed to
      // --resume, unless --set train.out names another; never the folder stored inside the
      // checkpoint (a copied run would otherwise write into the original).
      bool explicit_out = false;
      for (const auto& s : sets) explicit_out = explicit_out || s.rfind("train.out=", 0) == 0;
      if (!explicit_out) config.train.out = ckpt.parent_path().empty() ? "." : ckpt.parent_path().string();
      // The model of a resumed run is the checkpoint's: a changed model key is an error before
      // anything is written, not a silent no-op or a reshape error later.
      train::TrainConfig stored;
      auto stored_schema = stored.schema();
      stored_schema.load_string(train::checkpoint_config(ckpt).first, ckpt.string());
      const auto model_lines = [](const std::string& yaml) {
        std::vector<std::string> lines;
        std::istringstream in(yaml);
        bool inside = false;
        for (std::string line; std::getline(in, line);) {
          if (!line.empty() && line[0] != ' ')
            inside = line == "model:";
          else if (inside && line.find("init:") == std::string::npos &&
                   line.find("encoder_weights:") == std::string::npos)
            lines.push_back(line);
        }
        return lines;
      };
      const auto want = model_lines(schema.to_yaml()), have = model_lines(stored_schema.to_yaml());
      for (size_t i = 0; i < want.size() && i < have.size(); ++i)
        if (want[i] != have[i]) {
          const auto trim = [](std::string t) { return t.substr(t.find_first_not_of(' ')); };
          throw train::ConfigError("--resume " + resume + ": model." + trim(want[i]) +
                                   " differs from the checkpoint's (" + trim(have[i]) +
                                   "); a resumed run keeps its model (start a new run to change it)");
        }
    }
    if (!device.empty()) config.train.device = device;
    if (threads > 0) config.train.threads = threads;
    config.validate(source);
    dist = train::distributed_from_environment(dist);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lepard-train: %s\n", e.what());
    return 2;
  }
  if (print_config) {
    std::cout << config.schema().to_yaml();
    return 0;
  }
  if (config.train.device == "cuda" && !at::hasCUDA()) {
    std::fprintf(stderr, "lepard-train: train.device cuda, but this LibTorch has no CUDA (Debian's is CPU-only)\n");
    return 2;
  }
  cli::set_threads(config.train.threads > 0 ? config.train.threads : cli::default_threads());

  try {
    const auto t0 = std::chrono::steady_clock::now();
    auto train_set = train::load_dataset(config, false);
    auto val_set = train::load_dataset(config, true);
    spdlog::info("{} training and {} held-out images of '{}' from {} ({:.1f} s), {} pseudo-label clusters",
                 train_set.size(), val_set.size(), config.data.category, config.data.root,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), train_set.clusters);
    train::Distributed distributed(dist);
    train::Trainer trainer(config, std::move(train_set), std::move(val_set), &distributed);
    if (!resume.empty()) {
      trainer.resume(checkpoint_file(resume));
      spdlog::info("resumed from {} at step {}", checkpoint_file(resume).string(), trainer.step());
    }
    if (distributed.rank() == 0) {
      fs::create_directories(config.train.out);
      io::write_file_atomic(fs::path(config.train.out) / "config.yaml", config.schema().to_yaml());
    }
    cli::Progress progress;
    double last_loss = 0, images_per_s = 0;
    trainer.on_step = [&](const train::StepReport& r) {
      last_loss = r.loss;
      if (r.step % config.train.log_every == 0) images_per_s = r.images_per_s;
      if (distributed.rank() == 0) {
        char detail[96];
        std::snprintf(detail, sizeof detail, "loss %.4f, %.1f images/s", r.loss, images_per_s);
        progress.update("train steps", r.step, r.steps, detail);
      }
    };
    train::ValidationReport last_val;
    trainer.on_validate = [&](const train::ValidationReport& v) {
      last_val = v;
      spdlog::info("step {}: held-out silhouette IoU {:.4f}, part IoU {:.4f} ({} images, against {})", v.step,
                   v.silhouette_iou, v.part_iou, v.images, v.reference);
    };
    const auto t1 = std::chrono::steady_clock::now();
    const int64_t start_step = trainer.step();
    trainer.run(stop_after);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    if (distributed.rank() == 0) {
      const double ips = static_cast<double>((trainer.step() - start_step) * config.train.batch_size) / seconds;
      nlohmann::json summary = {{"steps", trainer.step()},
                                {"seconds", seconds},
                                {"images_per_s", ips},
                                {"final_loss", last_loss},
                                {"peak_rss_mb", peak_rss_mb()},
                                {"world_size", distributed.world_size()},
                                {"threads", config.train.threads > 0 ? config.train.threads : cli::default_threads()}};
      if (last_val.images > 0)
        summary["validation"] = {{"step", last_val.step},
                                 {"silhouette_iou", last_val.silhouette_iou},
                                 {"part_iou", last_val.part_iou},
                                 {"reference", last_val.reference}};
      io::write_file_atomic(fs::path(config.train.out) / "summary.json", summary.dump(2) + "\n");
      std::cout << summary.dump(2) << std::endl;
    }
  } catch (const train::TrainingError& e) {
    std::fprintf(stderr, "\nlepard-train: %s\n", e.what());
    return 3;
  } catch (const train::ConfigError& e) {
    std::fprintf(stderr, "lepard-train: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nlepard-train: %s\n", e.what());
    return 1;
  }
  return 0;
}
