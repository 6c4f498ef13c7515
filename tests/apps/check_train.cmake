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
# run_tool, then stop unless stderr matches `pattern`.
function(expect_message what expected pattern)
  run_tool("${what}" ${expected} ${ARGN})
  if(NOT err MATCHES "${pattern}")
    message(FATAL_ERROR "${what}: expected '${pattern}', got: ${err}")
  endif()
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
# A copied run resumes into the copy, never into the folder named inside the checkpoint.
file(REMOVE_RECURSE "${OUT}/run_copy")
file(COPY "${OUT}/run/" DESTINATION "${OUT}/run_copy")
file(SHA256 "${OUT}/run/checkpoint.pt" original_hash)
file(SHA256 "${OUT}/run/config.yaml" original_config)
run_tool("lepard-train --resume (copy)" 0 "${TOOL}" --resume "${OUT}/run_copy" --set train.steps=5 --threads 1)
file(SHA256 "${OUT}/run/checkpoint.pt" after_hash)
file(SHA256 "${OUT}/run_copy/checkpoint.pt" copy_hash)
if(NOT after_hash STREQUAL original_hash OR copy_hash STREQUAL original_hash)
  message(FATAL_ERROR "resuming the copy wrote into the original run (or not into the copy)")
endif()
file(READ "${OUT}/run_copy/config.yaml" copy_config)
if(NOT copy_config MATCHES "out: ${OUT}/run_copy")
  message(FATAL_ERROR "the copy's config.yaml does not name the copy: ${copy_config}")
endif()
# A changed model key on resume: exit 2 naming the key, nothing written.
run_tool("lepard-train --resume --set model.hidden=64" 2 "${TOOL}" --resume "${OUT}/run" --set model.hidden=64
         --set train.steps=6 --threads 1)
if(NOT err MATCHES "model.hidden: 64 differs from the checkpoint's \\(hidden: 32\\)")
  message(FATAL_ERROR "resume with a changed model key: ${err}")
endif()
file(SHA256 "${OUT}/run/config.yaml" config_after)
if(NOT config_after STREQUAL original_config)
  message(FATAL_ERROR "a refused resume rewrote config.yaml")
endif()
# A full disk (the file-size limit) during a checkpoint write: a clear error naming the
# file, no temporary file left behind, the previous checkpoint intact and loadable.
file(SHA256 "${OUT}/run/checkpoint.pt" before_full)
execute_process(COMMAND sh -c "ulimit -f 64 && exec \"$0\" \"$@\"" "${TOOL}" --resume "${OUT}/run" --set train.steps=5
                        --threads 1
                RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_VARIABLE out)
if(NOT rc EQUAL 1 OR NOT err MATCHES "cannot write .*checkpoint.pt.tmp.[0-9]+: File too large")
  message(FATAL_ERROR "lepard-train over the file-size limit: exit ${rc}: ${err}")
endif()
file(GLOB leftovers "${OUT}/run/*.tmp.*")
file(SHA256 "${OUT}/run/checkpoint.pt" after_full)
if(leftovers OR NOT after_full STREQUAL before_full)
  message(FATAL_ERROR "a failed checkpoint write left ${leftovers} or changed the previous checkpoint")
endif()
# A data-parallel rank whose peer never comes: an error within the timeout naming who was
# waited for, not a hang (or, built without Gloo, the error saying so).
# The port is drawn at random in 30000..39999, so that a training run of one's own on a fixed
# port (29500, 29731, ...) does not make the test fail on "Address already in use".
string(RANDOM LENGTH 4 ALPHABET 0123456789 digits)
set(port "3${digits}")
string(TIMESTAMP t0 "%s")
run_tool("lepard-train --world-size 2 without a peer" 1 "${TOOL}" --config "${OUT}/good.yaml" --world-size 2 --rank 0
         --timeout 2 --master-port ${port} --set train.out=${OUT}/lonely --threads 1)
string(TIMESTAMP t1 "%s")
math(EXPR waited "${t1} - ${t0}")
if(NOT err MATCHES "rank 0 of 2: no rendezvous at 127.0.0.1:${port} within 2 s: waited for ranks 1..1" AND
   NOT err MATCHES "built without Gloo")
  message(FATAL_ERROR "lepard-train without its peer: ${err}")
endif()
if(waited GREATER 60)
  message(FATAL_ERROR "lepard-train without its peer took ${waited} s with --timeout 2")
endif()
run_tool("lepard-train --timeout 0" 2 "${TOOL}" --config "${OUT}/good.yaml" --world-size 2 --timeout 0)
if(NOT err MATCHES "--timeout must be in")
  message(FATAL_ERROR "lepard-train --timeout 0: ${err}")
endif()
# Another dataset with the same ids pointed at this cache: refused, naming the cache and a sample.
run_tool(lepard-synth 0 "${SYNTH}" --out "${OUT}/other" --count 12 --size 64 --seed 4 --contact-sheet 0)
run_tool("lepard-train on another dataset's cache" 1 "${TOOL}" --config "${OUT}/good.yaml" --set data.root=${OUT}/other
         --set train.out=${OUT}/other_run --threads 1)
if(NOT err MATCHES "cache: the pseudo-labels of horse/[0-9]+ were made from another image than .*other/images/horse/input_")
  message(FATAL_ERROR "lepard-train with another dataset's cache: ${err}")
endif()
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
string(REGEX MATCHALL "broken.png" named "${err}")
list(LENGTH named times)
if(NOT times EQUAL 1)
  message(FATAL_ERROR "lepard-infer named the unreadable image ${times} times (once is enough): ${err}")
endif()
if(NOT out MATCHES "\"images\": 3" OR NOT out MATCHES "\"failed\": 1")
  message(FATAL_ERROR "unexpected lepard-infer summary: ${out}")
endif()
foreach(p ${pngs})
  get_filename_component(stem "${p}" NAME_WE)
  foreach(ext .obj .mtl .ply .glb .json _overlay.png _parts.png)
    if(NOT EXISTS "${OUT}/infer/${stem}${ext}")
      message(FATAL_ERROR "lepard-infer wrote no ${stem}${ext}")
    endif()
  endforeach()
endforeach()
# The part maps: 8-bit palette PNGs at the crop size, black background, indices within 16
# parts (this small model has 4), several parts shown, some of the crop covered and some not
# (about 4% is covered: the model is small and short-trained).
list(GET pngs 0 first_png)
get_filename_component(first_stem "${first_png}" NAME_WE)
run_tool("the part map" 0 "${PYTHON}" -c "
import sys
from PIL import Image
im = Image.open(sys.argv[1])
assert im.mode == 'P', im.mode
assert im.size == (64, 64), im.size
assert im.getpalette()[:3] == [0, 0, 0]
ids = list(im.getdata())
covered = sum(i > 0 for i in ids) / len(ids)
assert max(ids) <= 16 and len(set(ids)) >= 3 and 0.005 < covered < 0.98, (sorted(set(ids)), covered)
" "${OUT}/infer/${first_stem}_parts.png")
# Two inputs with one stem (twin.png, twin.jpg): one set of outputs each, none overwritten.
file(MAKE_DIRECTORY "${OUT}/twins")
configure_file("${first_png}" "${OUT}/twins/twin.png" COPYONLY)
configure_file("${first_png}" "${OUT}/twins/twin.jpg" COPYONLY)
run_tool("lepard-infer (twins)" 0 "${INFER}" --checkpoint "${OUT}/run" --images "${OUT}/twins" --out "${OUT}/twins_out"
         --crop-size 64 --formats json --contact-sheet 0 --threads 1)
foreach(f twin_png.json twin_jpg.json)
  if(NOT EXISTS "${OUT}/twins_out/${f}")
    message(FATAL_ERROR "lepard-infer on twin.png and twin.jpg wrote no ${f}")
  endif()
  # The finished run's checkpoint carries a part template: every part says whether its ends were turned.
  file(READ "${OUT}/twins_out/${f}" twin_json)
  string(REGEX MATCHALL "\"ends_turned\": (true|false)" turned "${twin_json}")
  list(LENGTH turned n_turned)
  if(NOT n_turned EQUAL 4)
    message(FATAL_ERROR "${f}: ${n_turned} parts with ends_turned, expected 4: ${twin_json}")
  endif()
endforeach()
# --crop saliency: the crop around the largest salient region of the ViT's CLS saliency,
# checked against an independent Python computation on lepard-prepare --raw's saliency of the
# same images with the same weights (the features suite's random ViT-S/8: the saliency means
# nothing, but each tool must compute the same box from it).
file(MAKE_DIRECTORY "${OUT}/salient")
list(GET pngs 1 second_png)
configure_file("${first_png}" "${OUT}/salient/a.png" COPYONLY)
configure_file("${second_png}" "${OUT}/salient/b.png" COPYONLY)
run_tool("lepard-prepare --raw (saliency)" 0 "${PREPARE}" --raw --images "${OUT}/salient" --weights "${VIT}"
         --out "${OUT}/salient_raw" --threads 1)
run_tool("lepard-infer --crop saliency" 0 "${INFER}" --checkpoint "${OUT}/run" --images "${OUT}/salient"
         --out "${OUT}/salient_out" --crop saliency --weights "${VIT}" --saliency-size 0 --saliency-threshold 0.6
         --crop-size 64 --formats json --contact-sheet 0 --threads 1)
run_tool("saliency crops against Python" 0 "${PYTHON}" "${CHECK_SALIENCY}" "${OUT}/salient_out" "${OUT}/salient_raw"
         8 0.6)
expect_message("lepard-infer --crop saliency without weights" 2 "--crop saliency needs --weights" "${INFER}"
               --checkpoint "${OUT}/run" --images "${OUT}/salient" --out "${OUT}/bad" --crop saliency)
expect_message("lepard-infer --crop middle" 2 "--crop must be centre or saliency" "${INFER}"
               --checkpoint "${OUT}/run" --images "${OUT}/salient" --out "${OUT}/bad" --crop middle)
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
# --boxes: every value range-checked, exit 2 naming the file and row.
list(GET pngs 0 box_png)
get_filename_component(box_name "${box_png}" NAME)
foreach(case "${box_name},1,2,-5,10|:2: width must be positive, got -5"
             "${box_name},nan,2,5,10|:2: left 'nan' is not a finite number"
             "${box_name},1,2,1e30,10|:2: width 1e30 is beyond 1e6 pixels"
             ",1,2,5,10|:2: empty file name"
             "${box_name},1,2,5,10\n${box_name},3,2,5,10|:3: a second box for ${box_name} \\(.*:2\\)"
             "${box_name},1,2,5,10,7|:2: more than 5 fields"
             "${box_name},5000,2,5,10|:2: the box of ${box_name} lies outside the")
  string(REPLACE "|" ";" parts "${case}")
  list(GET parts 0 rows)
  list(GET parts 1 pattern)
  string(REPLACE "\\n" "\n" rows "${rows}")
  file(WRITE "${OUT}/boxes.csv" "file,left,top,width,height\n${rows}\n")
  run_tool("lepard-infer --boxes (${rows})" 2 "${INFER}" --checkpoint "${OUT}/run" --images "${OUT}/images"
           --out "${OUT}/bad" --boxes "${OUT}/boxes.csv" --crop-size 64 --threads 1)
  if(NOT err MATCHES "boxes.csv${pattern}")
    message(FATAL_ERROR "lepard-infer --boxes with ${rows}: expected '${pattern}', got: ${err}")
  endif()
endforeach()
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
# --refine: a second row per model, refined against the cached pseudo-labels, with its time.
run_tool("lepard-eval --refine" 0 "${EVAL}" --checkpoint "${OUT}/run" --name ff --refine 3 --eval-grid 8x12
         --data "${OUT}/data" --split all --crop-size 64 --overlays 0 --threads 1 --out "${OUT}/eval_refine")
if(NOT out MATCHES "\\| ff \\| horse \\| 12 \\|.*\\| ff, refined 3 \\| horse \\| 12 \\| ${num} \\|")
  message(FATAL_ERROR "unexpected lepard-eval --refine table: ${out}")
endif()
file(READ "${OUT}/eval_refine/metrics.json" refine_json)
# per_image.csv: one line per image of each row, the row name with a comma quoted.
file(STRINGS "${OUT}/eval_refine/per_image.csv" per_image)
list(LENGTH per_image n)
list(GET per_image 0 header)
if(NOT n EQUAL 25 OR NOT header STREQUAL "model,category,id,iou,precision,recall,part_iou,chamfer,fscore_5,fscore_10,part_agreement_3d")
  message(FATAL_ERROR "per_image.csv of lepard-eval --refine: ${n} lines, header '${header}'")
endif()
list(FILTER per_image INCLUDE REGEX "^\"ff, refined 3\",horse,horse/[0-9]+,${num},${num},${num},${num},${num},")
list(LENGTH per_image n)
if(NOT n EQUAL 12)
  message(FATAL_ERROR "per_image.csv has ${n} lines of the refined row, not 12")
endif()
if(NOT refine_json MATCHES "\"refine_seconds_per_image\"")
  message(FATAL_ERROR "lepard-eval --refine recorded no time per image")
endif()
# --choose-view needs a model with turns; this one has none.
expect_message("lepard-eval --choose-view without turns" 2 "was trained with model.viewpoints 1" "${EVAL}"
               --checkpoint "${OUT}/run" --data "${OUT}/data" --choose-view)
# With turns: the second row, each image's turn chosen from its pseudo-labels.
run_tool("lepard-train (two turns)" 0 "${TOOL}" --config "${OUT}/good.yaml" --set model.viewpoints=2
         --set loss.viewpoint=1 --set loss.viewpoint_from=0 --set loss.ownership=true --set model.parts=8
         --set train.out=${OUT}/run_turns --threads 1)
run_tool("lepard-eval --choose-view" 0 "${EVAL}" --checkpoint "${OUT}/run_turns" --name vp --choose-view --eval-grid 8x12
         --data "${OUT}/data" --split all --crop-size 64 --overlays 0 --threads 1)
if(NOT out MATCHES "\\| vp \\| horse \\| 12 \\|.*\\| vp, view from labels \\| horse \\| 12 \\| ${num} \\|")
  message(FATAL_ERROR "unexpected lepard-eval --choose-view table: ${out}")
endif()
expect_message("lepard-infer --choose-view without labels" 2 "--choose-view needs --pseudo-labels" "${INFER}"
               --checkpoint "${OUT}/run" --images "${OUT}/twins" --out "${OUT}/bad" --choose-view)
expect_message("lepard-eval --part-template both" 2 "--part-template must be auto or none" "${EVAL}" --checkpoint
               "${OUT}/run" --data "${OUT}/data" --part-template both)
expect_message("lepard-eval --refine -1" 2 "--refine must be in" "${EVAL}" --checkpoint "${OUT}/run" --data "${OUT}/data"
               --refine -1)
# lepard-infer --refine: label maps named after the outputs; a missing one is named.
expect_message("lepard-infer --refine without labels" 2 "--refine needs --pseudo-labels" "${INFER}" --checkpoint
               "${OUT}/run" --images "${OUT}/twins" --out "${OUT}/bad" --refine 2)
file(MAKE_DIRECTORY "${OUT}/twin_labels")
file(COPY_FILE "${OUT}/cache/labels/horse/0.png" "${OUT}/twin_labels/twin_png.png")
expect_message("lepard-infer --refine, one label map missing" 1 "twin_jpg.png: no pseudo-labels for .*twin.jpg" "${INFER}"
               --checkpoint "${OUT}/run" --images "${OUT}/twins" --out "${OUT}/bad" --refine 2 --pseudo-labels
               "${OUT}/twin_labels" --crop-size 64 --threads 1)
file(COPY_FILE "${OUT}/cache/labels/horse/0.png" "${OUT}/twin_labels/twin_jpg.png")
run_tool("lepard-infer --refine" 0 "${INFER}" --checkpoint "${OUT}/run" --images "${OUT}/twins" --out "${OUT}/refined"
         --refine 2 --pseudo-labels "${OUT}/twin_labels" --crop-size 64 --formats json --contact-sheet 0 --threads 1)
if(NOT out MATCHES "\"refine_seconds_per_image\"" OR NOT EXISTS "${OUT}/refined/twin_png.json")
  message(FATAL_ERROR "lepard-infer --refine: ${out}")
endif()
# model.label_input: the network sees the pseudo-labels, so evaluation reads them from the
# checkpoint's cache and inference needs --pseudo-labels (an error naming the checkpoint).
run_tool("lepard-train (labels in)" 0 "${TOOL}" --config "${OUT}/good.yaml" --set model.label_input=true
         --set train.out=${OUT}/run_labels --threads 1)
run_tool("lepard-eval (labels in)" 0 "${EVAL}" --checkpoint "${OUT}/run_labels" --name li --eval-grid 8x12
         --data "${OUT}/data" --split all --crop-size 64 --overlays 0 --threads 1)
if(NOT out MATCHES "\\| li \\| horse \\| 12 \\| ${num} \\|")
  message(FATAL_ERROR "unexpected lepard-eval table for a label_input model: ${out}")
endif()
expect_message("lepard-infer (labels in) without labels" 2 "run_labels.*model.label_input.* needs --pseudo-labels"
               "${INFER}" --checkpoint "${OUT}/run_labels" --images "${OUT}/twins" --out "${OUT}/bad")
run_tool("lepard-infer (labels in)" 0 "${INFER}" --checkpoint "${OUT}/run_labels" --images "${OUT}/twins"
         --out "${OUT}/labelled" --pseudo-labels "${OUT}/twin_labels" --crop-size 64 --formats json --contact-sheet 0
         --threads 1)
if(NOT EXISTS "${OUT}/labelled/twin_png.json" OR NOT EXISTS "${OUT}/labelled/twin_jpg.json")
  message(FATAL_ERROR "lepard-infer (labels in) wrote no predictions: ${out}")
endif()
# A bare folder of label maps records no number of clusters: said, since fewer pass unnoticed.
if(NOT err MATCHES "--pseudo-labels [^ ]*twin_labels: the number of clusters of these labels is not recorded")
  message(FATAL_ERROR "lepard-infer (labels in) did not warn of the unrecorded cluster count: ${err}")
endif()
# A labels.json beside them that gives another number, or none, is refused by name.
file(WRITE "${OUT}/twin_labels/labels.json" "{\"clusters\": 5}")
expect_message("lepard-infer --pseudo-labels of another number of clusters" 2
               "--pseudo-labels [^ ]*twin_labels: labels of 5 clusters, but .*run_labels/checkpoint.pt was trained on 8"
               "${INFER}" --checkpoint "${OUT}/run_labels" --images "${OUT}/twins" --out "${OUT}/bad" --pseudo-labels
               "${OUT}/twin_labels" --crop-size 64 --threads 1)
file(WRITE "${OUT}/twin_labels/labels.json" "{\"clusters\": \"eight\"}")
expect_message("lepard-infer --pseudo-labels, labels.json without a count" 1
               "twin_labels/labels.json: no integer \"clusters\"" "${INFER}" --checkpoint "${OUT}/run_labels"
               --images "${OUT}/twins" --out "${OUT}/bad" --pseudo-labels "${OUT}/twin_labels" --crop-size 64 --threads 1)
file(REMOVE "${OUT}/twin_labels/labels.json")
# --label-clusters: photos labelled here with the training collection's stored clusters (from
# the surrogate beside these synthetic images), each label map written to labels/.
run_tool("lepard-infer (labels in, --label-clusters)" 0 "${INFER}" --checkpoint "${OUT}/run_labels" --images
         "${OUT}/data/images/horse" --out "${OUT}/clustered" --label-clusters "${OUT}/cache" --crop-size 64
         --formats json --contact-sheet 0 --threads 1)
if(NOT out MATCHES "\"label_clusters\": \"[^\"]*cache/clusters/horse\"" OR NOT EXISTS "${OUT}/clustered/labels/input_11.png"
   OR NOT EXISTS "${OUT}/clustered/input_11.json")
  message(FATAL_ERROR "lepard-infer --label-clusters: ${out}")
endif()
# On a model that does not consume them, the labels are only written: the same maps.
run_tool("lepard-infer (labels only written, --label-clusters)" 0 "${INFER}" --checkpoint "${OUT}/run" --images
         "${OUT}/data/images/horse" --out "${OUT}/clustered_only" --label-clusters "${OUT}/cache" --crop-size 64
         --formats json --contact-sheet 0 --threads 1)
# The labels it wrote record their clusters, so they serve as --pseudo-labels with no warning,
# and give the same predictions as when they were made.
file(READ "${OUT}/clustered/labels/labels.json" recorded)
if(NOT recorded MATCHES "\"clusters\": 8" OR NOT recorded MATCHES "\"from\": \"[^\"]*cache/clusters/horse\"")
  message(FATAL_ERROR "lepard-infer --label-clusters recorded no cluster count: ${recorded}")
endif()
run_tool("lepard-infer (labels in, its own written labels)" 0 "${INFER}" --checkpoint "${OUT}/run_labels" --images
         "${OUT}/data/images/horse" --out "${OUT}/clustered_again" --pseudo-labels "${OUT}/clustered/labels"
         --crop-size 64 --formats json --contact-sheet 0 --threads 1)
file(SHA256 "${OUT}/clustered/input_11.json" first)
file(SHA256 "${OUT}/clustered_again/input_11.json" again)
if(err MATCHES "not recorded" OR NOT first STREQUAL again)
  message(FATAL_ERROR "lepard-infer on the labels --label-clusters wrote: ${err}")
endif()
# The labels record the crop each map was made for; under another crop of the same images
# (--boxes here, the centred square there) they are refused, naming the map and both crops.
if(NOT recorded MATCHES "\"crops\": {.*\"input_11\": {")
  message(FATAL_ERROR "lepard-infer --label-clusters recorded no crops: ${recorded}")
endif()
file(GLOB horse_pngs "${OUT}/data/images/horse/*.png")
set(rows "file,left,top,width,height\n")
foreach(png IN LISTS horse_pngs)
  get_filename_component(png_name "${png}" NAME)
  string(APPEND rows "${png_name},8,8,36,36\n")
endforeach()
file(WRITE "${OUT}/other_boxes.csv" "${rows}")
expect_message("lepard-infer --pseudo-labels made for another crop" 1
               "labels/input_[0-9]+\\.png: made for the crop at \\(0, 0\\) of side 64 of .*input_[0-9]+\\.png, but this run crops it at \\([0-9-]+, [0-9-]+\\) of side 54"
               "${INFER}" --checkpoint "${OUT}/run_labels" --images "${OUT}/data/images/horse" --out "${OUT}/bad"
               --pseudo-labels "${OUT}/clustered/labels" --boxes "${OUT}/other_boxes.csv" --crop-size 64
               --formats json --contact-sheet 0 --threads 1)
file(SHA256 "${OUT}/clustered/labels/input_11.png" consumed)
file(SHA256 "${OUT}/clustered_only/labels/input_11.png" written)
if(NOT consumed STREQUAL written)
  message(FATAL_ERROR "lepard-infer --label-clusters wrote other labels for a model that does not consume them")
endif()
expect_message("lepard-infer with two label sources" 2 "--pseudo-labels and --label-clusters both give the labels"
               "${INFER}" --checkpoint "${OUT}/run_labels" --images "${OUT}/twins" --out "${OUT}/bad" --pseudo-labels
               "${OUT}/twin_labels" --label-clusters "${OUT}/cache")
# Surrogate clusters on photos that have no surrogate: the error says why, and what to do.
expect_message("lepard-infer --label-clusters, no surrogate" 1 "twin.jpg.*were made from the DINO surrogate.*--weights"
               "${INFER}" --checkpoint "${OUT}/run_labels" --images "${OUT}/twins" --out "${OUT}/bad" --label-clusters
               "${OUT}/cache" --crop-size 64 --threads 1)
expect_message("lepard-infer --label-clusters without clusters" 1 "twin_labels: no stored clusters" "${INFER}"
               --checkpoint "${OUT}/run_labels" --images "${OUT}/twins" --out "${OUT}/bad" --label-clusters
               "${OUT}/twin_labels")
# Clusters made from DINO weights (the features suite's random ViT-S/8, copied so that it can be
# moved): --assign with the same weights relabels the collection file for file; lepard-infer
# runs the ViT from the path the cache stored, or from --weights once that path is gone; another
# architecture, other feature settings and another number of clusters are refused by name.
file(COPY_FILE "${VIT}" "${OUT}/vit_here.pth")
run_tool("lepard-prepare --weights" 0 "${PREPARE}" --data "${OUT}/data" --weights "${OUT}/vit_here.pth"
         --out "${OUT}/vit_cache" --crop-size 64 --restarts 1 --contact-sheet 0 --threads 1)
run_tool("lepard-prepare --weights --assign" 0 "${PREPARE}" --data "${OUT}/data" --weights "${OUT}/vit_here.pth"
         --out "${OUT}/vit_assigned" --crop-size 64 --assign "${OUT}/vit_cache" --contact-sheet 0 --threads 1)
file(GLOB vit_labels RELATIVE "${OUT}/vit_cache/labels/horse" "${OUT}/vit_cache/labels/horse/*.png")
list(LENGTH vit_labels n_vit_labels)
if(NOT n_vit_labels EQUAL 12)
  message(FATAL_ERROR "lepard-prepare --weights wrote ${n_vit_labels} label files, expected 12")
endif()
foreach(f ${vit_labels})
  file(SHA256 "${OUT}/vit_cache/labels/horse/${f}" made)
  file(SHA256 "${OUT}/vit_assigned/labels/horse/${f}" assigned)
  if(NOT made STREQUAL assigned)
    message(FATAL_ERROR "lepard-prepare --assign with the same weights changed the label file ${f}")
  endif()
endforeach()
expect_message("lepard-prepare --assign with another ViT" 1 "vit_cache.*made from features.*ViT-S/8.*this run's.*ViT-B/16"
               "${PREPARE}" --data "${OUT}/data" --weights "${VIT_BASE}" --out "${OUT}/vit_refused" --crop-size 64
               --assign "${OUT}/vit_cache" --contact-sheet 0 --threads 1)
if(EXISTS "${OUT}/vit_refused/features")
  message(FATAL_ERROR "lepard-prepare --assign computed features before refusing the clusters")
endif()
run_tool("lepard-infer --label-clusters (ViT)" 0 "${INFER}" --checkpoint "${OUT}/run_labels" --images
         "${OUT}/data/images/horse" --out "${OUT}/vit_clustered" --label-clusters "${OUT}/vit_cache" --crop-size 64
         --formats json --contact-sheet 0 --threads 1)
if(NOT err MATCHES "--label-clusters: 8 clusters from .*vit_cache/clusters/horse \\(ViT-S/8\\)"
   OR NOT EXISTS "${OUT}/vit_clustered/labels/input_11.png")
  message(FATAL_ERROR "lepard-infer --label-clusters (ViT): ${err}")
endif()
file(RENAME "${OUT}/vit_here.pth" "${OUT}/vit_moved.pth")
expect_message("lepard-infer --label-clusters, weights moved" 2 "vit_here.pth, which is not there: give --weights"
               "${INFER}" --checkpoint "${OUT}/run_labels" --images "${OUT}/twins" --out "${OUT}/bad" --label-clusters
               "${OUT}/vit_cache" --crop-size 64 --threads 1)
run_tool("lepard-infer --label-clusters --weights" 0 "${INFER}" --checkpoint "${OUT}/run_labels" --images
         "${OUT}/data/images/horse" --out "${OUT}/vit_clustered2" --label-clusters "${OUT}/vit_cache" --weights
         "${OUT}/vit_moved.pth" --crop-size 64 --formats json --contact-sheet 0 --threads 1)
foreach(i 0 11)
  file(SHA256 "${OUT}/vit_clustered/labels/input_${i}.png" first)
  file(SHA256 "${OUT}/vit_clustered2/labels/input_${i}.png" second)
  if(NOT first STREQUAL second)
    message(FATAL_ERROR "lepard-infer --label-clusters: the same weights at another path gave other labels")
  endif()
endforeach()
# With --crop saliency on the same weights, the ViT is loaded once and serves both.
expect_message("lepard-infer --label-clusters --crop saliency" 0
               "--label-clusters: the ViT of --crop saliency \\([^)]*vit_moved.pth\\)" "${INFER}" --checkpoint
               "${OUT}/run_labels" --images "${OUT}/data/images/horse" --out "${OUT}/vit_salient" --label-clusters
               "${OUT}/vit_cache" --weights "${OUT}/vit_moved.pth" --crop saliency --saliency-threshold 0.6
               --crop-size 64 --formats json --contact-sheet 0 --threads 1)
if(NOT EXISTS "${OUT}/vit_salient/labels/input_11.png" OR NOT EXISTS "${OUT}/vit_salient/input_11.json")
  message(FATAL_ERROR "lepard-infer --label-clusters --crop saliency wrote no labels or predictions: ${out}")
endif()
expect_message("lepard-infer --label-clusters, another ViT" 2 "vit_base16.pth is a ViT-B/16, but the clusters of .*vit_cache were made with a ViT-S/8"
               "${INFER}" --checkpoint "${OUT}/run_labels" --images "${OUT}/twins" --out "${OUT}/bad" --label-clusters
               "${OUT}/vit_cache" --weights "${VIT_BASE}" --crop-size 64 --threads 1)
run_tool("lepard-prepare --weights --clusters 5" 0 "${PREPARE}" --data "${OUT}/data" --weights "${OUT}/vit_moved.pth"
         --out "${OUT}/vit_cache5" --crop-size 64 --clusters 5 --restarts 1 --contact-sheet 0 --threads 1)
expect_message("lepard-infer --label-clusters, another number of clusters" 2
               "vit_cache5: 5 clusters, but .*run_labels/checkpoint.pt was trained on 8"
               "${INFER}" --checkpoint "${OUT}/run_labels" --images "${OUT}/twins" --out "${OUT}/bad" --label-clusters
               "${OUT}/vit_cache5" --weights "${OUT}/vit_moved.pth" --crop-size 64 --threads 1)
# A cache's label folder records its clusters in the cache's report: both tools refuse another number.
expect_message("lepard-infer --pseudo-labels, a cache of another number of clusters" 2
               "--pseudo-labels [^ ]*vit_cache5/labels/horse: labels of 5 clusters, but .*run_labels/checkpoint.pt was trained on 8"
               "${INFER}" --checkpoint "${OUT}/run_labels" --images "${OUT}/twins" --out "${OUT}/bad" --pseudo-labels
               "${OUT}/vit_cache5/labels/horse" --crop-size 64 --threads 1)
expect_message("lepard-eval --pseudo-labels, a cache of another number of clusters" 2
               "--pseudo-labels [^ ]*vit_cache5/labels/horse: labels of 5 clusters, but .*run_labels/checkpoint.pt was trained on 8"
               "${EVAL}" --checkpoint "${OUT}/run_labels" --pseudo-labels "${OUT}/vit_cache5" --data "${OUT}/data"
               --split all --crop-size 64 --overlays 0 --threads 1)
# One missing ground-truth file is an error naming the image, not a metric silently zeroed.
file(RENAME "${OUT}/data/gt/horse/parts_3.png" "${OUT}/parts_3.png.bak")
run_tool("lepard-eval (a part map missing)" 1 "${EVAL}" --checkpoint "${OUT}/run" --data "${OUT}/data" --split all
         --crop-size 64 --overlays 0 --threads 1)
file(RENAME "${OUT}/parts_3.png.bak" "${OUT}/data/gt/horse/parts_3.png")
if(NOT err MATCHES "input_3.png: no ground-truth part labels, though 11 other images have them")
  message(FATAL_ERROR "lepard-eval with a part map missing: ${err}")
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
# train.ema: the checkpoint's model is the average; --live-weights scores the trained weights
# beside it, and is an error for a checkpoint that has none.
run_tool("lepard-train (moving average)" 0 "${TOOL}" --config "${OUT}/good.yaml" --set train.ema=0.9
         --set train.out=${OUT}/run_ema --threads 1)
run_tool("lepard-eval --live-weights" 0 "${EVAL}" --checkpoint "${OUT}/run_ema" --name live --live-weights
         --eval-grid 8x12 --data "${OUT}/data" --split all --crop-size 64 --overlays 0 --threads 1)
if(NOT out MATCHES "\\| live \\| horse \\| 12 \\| ${num} \\|")
  message(FATAL_ERROR "unexpected lepard-eval --live-weights table: ${out}")
endif()
expect_message("lepard-eval --live-weights without an average" 1 "run/checkpoint.pt: holds no trained weights apart from its model \\(it was trained without train.ema"
               "${EVAL}" --checkpoint "${OUT}/run" --data "${OUT}/data" --live-weights)
# lepard-infer reconstructs with either: the two differ (the average lags the trained weights).
foreach(which average live)
  set(extra)
  if(which STREQUAL "live")
    set(extra --live-weights)
  endif()
  run_tool("lepard-infer (${which} weights)" 0 "${INFER}" --checkpoint "${OUT}/run_ema" --images "${OUT}/twins"
           --out "${OUT}/ema_${which}" --crop-size 64 --formats json --contact-sheet 0 --threads 1 ${extra})
  file(READ "${OUT}/ema_${which}/twin_png.json" json_${which})
endforeach()
if(json_average STREQUAL json_live)
  message(FATAL_ERROR "lepard-infer --live-weights wrote the moving average's reconstruction")
endif()
expect_message("lepard-infer --live-weights without an average" 1 "run/checkpoint.pt: holds no trained weights apart from its model"
               "${INFER}" --checkpoint "${OUT}/run" --images "${OUT}/twins" --out "${OUT}/bad" --live-weights)
foreach(f metrics.json metrics.md per_image.csv overlays_horse.png)
  if(NOT EXISTS "${OUT}/eval/${f}")
    message(FATAL_ERROR "lepard-eval wrote no ${f}")
  endif()
endforeach()
