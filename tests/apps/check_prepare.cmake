# Runs lepard-synth then lepard-prepare --surrogate twice on a small set: the first run
# computes every feature map and writes labels, report and contact sheet; the second
# finds them all cached.
file(REMOVE_RECURSE "${OUT}")
execute_process(COMMAND "${SYNTH}" --out "${OUT}/data" --count 12 --size 64 --seed 2 --contact-sheet 0
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "lepard-synth failed (${rc}): ${err}")
endif()
foreach(run first second)
  execute_process(COMMAND "${TOOL}" --data "${OUT}/data" --surrogate --out "${OUT}/cache" --surrogate-grid 16
                          --restarts 2 --crop-size 64
                  RESULT_VARIABLE rc OUTPUT_VARIABLE stdout_${run} ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "lepard-prepare (${run} run) failed (${rc}): ${err}")
  endif()
endforeach()
if(NOT stdout_first MATCHES "horse: 12 images \\(12 computed, 0 cached\\), 8 clusters.*horse: pseudo-labels against ground truth: overall IoU 0\\.[0-9]+, part IoU 0\\.[0-9]+ \\(12 images\\)")
  message(FATAL_ERROR "unexpected first report: ${stdout_first}")
endif()
if(NOT stdout_second MATCHES "horse: 12 images \\(0 computed, 12 cached\\).*co-segmentation cached")
  message(FATAL_ERROR "unexpected second report: ${stdout_second}")
endif()
foreach(f prepare_horse.json pseudo_labels_horse.png features/stamp.json features/horse/11.npy saliency/horse/0.npy labels/horse/7.png)
  if(NOT EXISTS "${OUT}/cache/${f}")
    message(FATAL_ERROR "missing ${OUT}/cache/${f}")
  endif()
endforeach()
file(READ "${OUT}/cache/prepare_horse.json" report)
if(NOT report MATCHES "\"overall_iou\": 0\\.[0-9]+" OR NOT report MATCHES "\"part_iou\": 0\\.[0-9]+")
  message(FATAL_ERROR "prepare_horse.json lacks the pseudo-labels' overall and part IoU: ${report}")
endif()
# The dataset regenerated in place (another seed: new images, the same ids): every sample's
# content stamp changed, so every feature map and the co-segmentation are recomputed.
file(REMOVE_RECURSE "${OUT}/data")
execute_process(COMMAND "${SYNTH}" --out "${OUT}/data" --count 12 --size 64 --seed 3 --contact-sheet 0
                RESULT_VARIABLE rc ERROR_VARIABLE err)
execute_process(COMMAND "${TOOL}" --data "${OUT}/data" --surrogate --out "${OUT}/cache" --surrogate-grid 16
                        --restarts 2 --crop-size 64
                RESULT_VARIABLE rc OUTPUT_VARIABLE stdout_third ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT stdout_third MATCHES "horse: 12 images \\(12 computed, 0 cached\\)")
  message(FATAL_ERROR "lepard-prepare after the dataset changed in place reused stale features (${rc}): ${stdout_third} ${err}")
endif()
if(NOT EXISTS "${OUT}/cache/features/inputs.json")
  message(FATAL_ERROR "lepard-prepare wrote no content stamps (features/inputs.json)")
endif()
foreach(f clusters/horse/clusters.json clusters/horse/parts.npy clusters/horse/fg_groups.npy clusters/horse/background.npy)
  if(NOT EXISTS "${OUT}/cache/${f}")
    message(FATAL_ERROR "lepard-prepare stored no ${f}")
  endif()
endforeach()
# --assign: new horses labelled with the stored clusters (no co-segmentation, no clusters of
# their own), scored like any pseudo-labels; features made otherwise are refused.
execute_process(COMMAND "${SYNTH}" --out "${OUT}/fresh" --count 6 --size 64 --seed 9 --contact-sheet 0
                RESULT_VARIABLE rc ERROR_VARIABLE err)
execute_process(COMMAND "${TOOL}" --data "${OUT}/fresh" --surrogate --out "${OUT}/fresh_cache" --surrogate-grid 16
                        --crop-size 64 --assign "${OUT}/cache"
                RESULT_VARIABLE rc OUTPUT_VARIABLE stdout_assign ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT stdout_assign MATCHES "horse: 6 images \(6 computed, 0 cached\), 8 clusters.*labelled with the stored clusters of .*cache/clusters/horse.*overall IoU 0\.[0-9]+")
  message(FATAL_ERROR "lepard-prepare --assign (${rc}): ${stdout_assign} ${err}")
endif()
if(NOT EXISTS "${OUT}/fresh_cache/labels/horse/5.png" OR EXISTS "${OUT}/fresh_cache/clusters")
  message(FATAL_ERROR "lepard-prepare --assign: no labels, or clusters of its own")
endif()
execute_process(COMMAND "${TOOL}" --data "${OUT}/fresh" --surrogate --out "${OUT}/fresh_other" --surrogate-grid 8
                        --crop-size 64 --assign "${OUT}/cache"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "the clusters were made from features")
  message(FATAL_ERROR "lepard-prepare --assign with another surrogate grid: expected a refusal, got ${rc}: ${out} ${err}")
endif()
# The co-segmentation flags: bad values stop the tool before any work, naming the flag.
foreach(bad "--foreground;salient" "--vote-share;0" "--vote-share;1.5")
  execute_process(COMMAND "${TOOL}" --data "${OUT}/data" --surrogate --out "${OUT}/cache" ${bad}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  list(GET bad 0 flag)
  if(rc EQUAL 0 OR NOT err MATCHES "${flag} must be")
    message(FATAL_ERROR "lepard-prepare ${bad}: expected an error naming ${flag}, got ${rc}: ${out} ${err}")
  endif()
endforeach()
