# lepard-train on a small synthetic set: bad configurations fail before training with a
# message naming the key or path (exit 2); a short run interrupted with --stop-after and
# resumed writes metrics.jsonl, checkpoint.pt, config.yaml and summary.json.
file(REMOVE_RECURSE "${OUT}")
# Runs a tool and stops the test unless it exits with `expected`; its stdout and stderr are
# left in `out` and `err` for the checks that follow.
function(run_tool what expected)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE stdout ERROR_VARIABLE stderr)
  if(NOT rc EQUAL ${expected})
    message(FATAL_ERROR "${what}: exit ${rc}, expected ${expected}: ${stderr}")
  endif()
  set(out "${stdout}" PARENT_SCOPE)
  set(err "${stderr}" PARENT_SCOPE)
endfunction()

run_tool(lepard-synth 0 "${SYNTH}" --out "${OUT}/data" --count 12 --size 64 --seed 3 --contact-sheet 0)
run_tool(lepard-prepare 0 "${PREPARE}" --data "${OUT}/data" --surrogate --out "${OUT}/cache" --surrogate-grid 16
         --restarts 1 --crop-size 64)
file(WRITE "${OUT}/good.yaml" "data:\n  root: ${OUT}/data\n  cache: ${OUT}/cache\n  crop_size: 64\n  test_fraction: 0.25\n"
     "model:\n  parts: 4\n  image_size: 32\n  encoder_depth: 2\n  encoder_width: 8\n  hidden: 32\n  rings: 6\n  segments: 8\n"
     "loss:\n  render_size: 16\ntrain:\n  steps: 4\n  batch_size: 2\n  warmup: 1\n  validate_every: 2\n  log_every: 1\n"
     "  validate_size: 32\n  out: ${OUT}/run\n")
file(WRITE "${OUT}/unknown.yaml" "data:\n  root: ${OUT}/data\ntrain:\n  lrr: 0.1\n")
file(WRITE "${OUT}/type.yaml" "data:\n  root: ${OUT}/data\ntrain:\n  steps: many\n")
file(WRITE "${OUT}/nodata.yaml" "data:\n  root: ${OUT}/no_such_folder\n")

function(expect_config_error config pattern)
  run_tool("${config} ${ARGN}" 2 "${TOOL}" --config "${config}" ${ARGN})
  if(NOT err MATCHES "${pattern}")
    message(FATAL_ERROR "${config} ${ARGN}: message does not match '${pattern}': ${err}")
  endif()
  if(EXISTS "${OUT}/run")
    message(FATAL_ERROR "${config}: a failed configuration started a run")
  endif()
endfunction()
expect_config_error("${OUT}/unknown.yaml" "unknown.yaml:4: unknown key 'train.lrr'")
expect_config_error("${OUT}/type.yaml" "type.yaml:4: key 'train.steps' expects an integer, got 'many'")
expect_config_error("${OUT}/nodata.yaml" "key 'data.root' names .*no_such_folder, which is not a folder")
expect_config_error("${OUT}/good.yaml" "unknown key 'train.stepz'" --set train.stepz=3)
expect_config_error("${OUT}/good.yaml" "data.cache.*not a folder" --set data.cache=${OUT}/nowhere)

run_tool("lepard-train (first half)" 0 "${TOOL}" --config "${OUT}/good.yaml" --stop-after 2 --threads 1)
run_tool("lepard-train --resume" 0 "${TOOL}" --resume "${OUT}/run" --threads 1)
if(NOT err MATCHES "resumed from .*checkpoint.pt at step 2")
  message(FATAL_ERROR "no resume message: ${err}")
endif()
if(NOT out MATCHES "\"steps\": 4" OR NOT out MATCHES "\"silhouette_iou\": [0-9.e-]+")
  message(FATAL_ERROR "unexpected summary: ${out}")
endif()
foreach(f checkpoint.pt metrics.jsonl config.yaml summary.json)
  if(NOT EXISTS "${OUT}/run/${f}")
    message(FATAL_ERROR "missing ${OUT}/run/${f}")
  endif()
endforeach()
file(STRINGS "${OUT}/run/metrics.jsonl" lines)
list(LENGTH lines n)
if(n LESS 6)  # 4 step lines and 2 validations
  message(FATAL_ERROR "metrics.jsonl has ${n} lines: ${lines}")
endif()

# lepard-infer on the images with one corrupt file among them: every output for every good
# image, the corrupt one reported, exit code 4.
file(MAKE_DIRECTORY "${OUT}/images")
file(GLOB pngs "${OUT}/data/images/horse/input_*.png")
list(SUBLIST pngs 0 3 pngs)
foreach(p ${pngs})
  file(COPY "${p}" DESTINATION "${OUT}/images")
endforeach()
file(WRITE "${OUT}/images/broken.png" "not a png")
run_tool("lepard-infer (one unreadable image)" 4 "${INFER}" --checkpoint "${OUT}/run" --images "${OUT}/images"
         --out "${OUT}/infer" --crop-size 64 --threads 1)
if(NOT err MATCHES "broken.png")
  message(FATAL_ERROR "lepard-infer did not name the unreadable image: ${err}")
endif()
if(NOT out MATCHES "\"images\": 3" OR NOT out MATCHES "\"failed\": 1")
  message(FATAL_ERROR "unexpected lepard-infer summary: ${out}")
endif()
foreach(p ${pngs})
  get_filename_component(stem "${p}" NAME_WE)
  foreach(ext .obj .mtl .ply .glb .json _overlay.png)
    if(NOT EXISTS "${OUT}/infer/${stem}${ext}")
      message(FATAL_ERROR "lepard-infer wrote no ${stem}${ext}")
    endif()
  endforeach()
endforeach()
# Bad flags are errors naming the flag (exit 2), not a silent default or a hang.
run_tool("lepard-infer --batch 0" 2 "${INFER}" --checkpoint "${OUT}/run" --images "${OUT}/images" --out "${OUT}/bad"
         --batch 0)
if(NOT err MATCHES "--batch must be at least 1, got 0")
  message(FATAL_ERROR "lepard-infer --batch 0: ${err}")
endif()
run_tool("lepard-infer --formats obj,stl" 2 "${INFER}" --checkpoint "${OUT}/run" --images "${OUT}/images"
         --out "${OUT}/bad" --formats obj,stl)
if(NOT err MATCHES "--formats: unknown output 'stl'")
  message(FATAL_ERROR "lepard-infer --formats obj,stl: ${err}")
endif()
if(NOT EXISTS "${OUT}/infer/contact_sheet.png")
  message(FATAL_ERROR "lepard-infer wrote no contact sheet")
endif()

# lepard-eval: the paper's table, with the 3D columns (the menagerie stores its meshes).
run_tool(lepard-eval 0 "${EVAL}" --checkpoint "${OUT}/run" --data "${OUT}/data" --split all --crop-size 64
         --out "${OUT}/eval" --threads 1)
set(num "[0-9]+\\.[0-9]+")
if(NOT out MATCHES "\\| run \\| horse \\| 12 \\| ${num} \\| ${num} \\| ${num} \\| ${num} \\| ${num} \\| ${num} \\| ${num} \\| ${num} \\| ${num} \\| ${num} \\|")
  message(FATAL_ERROR "unexpected lepard-eval table: ${out}")
endif()
# Several models and the pseudo-labels in one table: one row each, in order.
run_tool("lepard-eval (table)" 0 "${EVAL}" --pseudo-labels "${OUT}/cache" --checkpoint "${OUT}/run" --name first
         --checkpoint "${OUT}/run" --name second --transfer vertex --eval-grid 8x12 --data "${OUT}/data" --split all
         --crop-size 64 --overlays 0 --threads 1)
if(NOT out MATCHES "\\| pseudo-labels \\| horse \\| 12 \\| - \\| - \\| ${num} \\| ${num} \\| - \\|.*\\| first \\| horse \\| 12 \\|.*\\| second \\| horse \\| 12 \\|")
  message(FATAL_ERROR "unexpected lepard-eval table of two models and the pseudo-labels: ${out}")
endif()
run_tool("lepard-eval --batch -1" 2 "${EVAL}" --checkpoint "${OUT}/run" --data "${OUT}/data" --batch -1)
if(NOT err MATCHES "--batch must be at least 1, got -1")
  message(FATAL_ERROR "lepard-eval --batch -1: ${err}")
endif()
run_tool("lepard-eval --eval-grid 0x4" 2 "${EVAL}" --checkpoint "${OUT}/run" --data "${OUT}/data" --eval-grid 0x4)
if(NOT err MATCHES "--eval-grid must be")
  message(FATAL_ERROR "lepard-eval --eval-grid 0x4: ${err}")
endif()
run_tool("lepard-eval --name without its checkpoint" 2 "${EVAL}" --checkpoint "${OUT}/run" --name a --name b
         --data "${OUT}/data")
if(NOT err MATCHES "--name: 2 names for 1 checkpoints")
  message(FATAL_ERROR "lepard-eval --name: ${err}")
endif()
foreach(f metrics.json metrics.md overlays_horse.png)
  if(NOT EXISTS "${OUT}/eval/${f}")
    message(FATAL_ERROR "lepard-eval wrote no ${f}")
  endif()
endforeach()
