#pragma once
// The network's options (model/model.h builds the network from them): plain values with no
// LibTorch headers, so that the training configuration (train/config.h) can bind its model.*
// keys to them without pulling in torch/nn.

#include <cstdint>

namespace lepard::model {

// The encoder's normalisation: GroupNorm, or BatchNorm frozen at its statistics (what
// torchvision's ResNet weights need).
enum class Normalization { Group, FrozenBatch };
// How the last feature map becomes the feature vector: Flatten keeps its layout (where
// things are in the image, which the camera and part positions need), Mean is the
// classifier's global average pool.
enum class Pooling { Flatten, Mean };
// The frame the part head's centres and orientations are predicted in. Object: q_c and
// q_theta directly, in the object frame, so that where a part lands in the image depends on
// the camera head's output too. Camera: each centre as its image position (u, v) and depth,
// each orientation relative to the camera; the decoder turns them into the object frame
// through the predicted camera (LepardNet::decode), so that the image of the parts no longer
// depends on the camera's rotation, which becomes the object frame's gauge.
enum class PartFrame { Object, Camera };

struct ModelOptions {
  int64_t parts = 16;          // K
  int64_t clusters = 8;        // C, the pseudo-label clusters (from the cache)
  int64_t image_size = 128;    // network input side
  int64_t encoder_depth = 4;   // residual stages
  int64_t encoder_width = 32;  // channels of the first stage (doubling per stage)
  int64_t encoder_blocks = 1;  // BasicBlocks per stage
  Normalization norm = Normalization::Group;
  Pooling pool = Pooling::Flatten;
  int64_t hidden = 256;  // decoder MLP width
  bool local_deformation = true;
  bool rigid = false;            // true: no tapering or bending (q_s's t1, t2, b1 held at 0; ablation)
  int64_t flow_grid = 4;         // G: control grid of q_d per axis
  int64_t flow_integration = 8;  // grid on which q_d's velocity is integrated (model/reconstruct.h)
  int64_t rings = 8;             // each part's surface grid: latitude rings
  int64_t segments = 12;         //   and longitude segments
  double max_velocity = 0.15;    // bound of q_d (normalised units; core/local_flow.h)
  double max_exponent = 1.7;     // upper bound of the squareness exponents e1, e2 (lower 0.2)
  // Upper bound of a part's size a0 (its largest half-extent, object units; lower 0.05). At
  // 0.5 the leg parts of the label-input recipe sit near the bound (a0 0.47-0.49); at 0.8
  // every part grew and the camera moved back, with no gain (docs/BENCHMARKS.md).
  double max_size = 0.5;
  // Lower bound of the aspect ratios a1..a3, so a part's thinnest half-extent is min_aspect a0.
  // At 0.1 a leg part as long as the benchmark's (a0 0.4-0.46) may be 0.04-0.046 object units
  // wide on each side, about 4-5 pixels at the 256-pixel crop, a little under a horse's lower
  // leg; the trained benchmark model's leg parts stay above the bound (docs/BENCHMARKS.md
  // "Thin legs").
  double min_aspect = 0.1;
  double camera_distance = 3.0;
  double focal = 2.0;
  double cluster_prior = 3.0;  // initial logit of part k's own cluster (k mod C)
  // Turns about the object's vertical axis that the camera chooses among, 2 pi j / viewpoints
  // (a selection head; 2: the animal faces one way or the other); 1: none, the camera head
  // alone (train/viewpoint.h).
  int64_t viewpoints = 1;
  // true: the network also sees the image's pseudo-labels, as C + 1 more input channels
  // (one-hot of the background and the C clusters, nearest-resized to image_size), so that
  // it reads where each cluster is instead of learning it from the pixels alone. Every
  // forward pass then needs the labels (lepard-prepare's cache, or the surrogate's).
  bool label_input = false;
  // Feedback passes (iterative error feedback): 0, none. With N > 0 the network's prediction is
  // rendered (hard z-buffer, one-hot planes of the K parts and the background at image_size)
  // and a second encoder, which sees the input and those planes, adds a correction to the raw
  // outputs; N times, the same weights each pass. The rendering carries no gradient: the
  // corrector learns to read where the parts are against where the labels or pixels say they
  // should be. Needs model.viewpoints 1.
  int64_t feedback = 0;
  // Spatial soft-argmax keypoints (Levine et al. 2016's spatial softmax): 0, none. With N > 0
  // a 1 x 1 convolution maps the output of encoder stage keypoint_stage (1-based; at the
  // 128-pixel input stage 2 is 16 x 16) to N score maps, each turned by a softmax over its
  // positions into an expected position (x, y) in the image's normalised coordinates; the 2N
  // coordinates join the flattened features the MLP reads. They tell it where things are to
  // a fraction of a cell of that map, which the 4 x 4 last map alone does not.
  int64_t keypoints = 0;
  int64_t keypoint_stage = 2;
  // true (needs label_input): each foreground cluster's moments in the pseudo-labels (the
  // square root of its share of the image, its centroid (x, y), the standard deviations of x
  // and y and their correlation; label_moments(), 6 C values) join the features the MLP reads,
  // so that it knows where every cluster is and how it lies to a fraction of a label cell,
  // which the convolutions' 4 x 4 last map blurs.
  bool label_moments = false;
  // Object (the default) or Camera: see PartFrame. Camera needs viewpoints 1 (a turn of the
  // camera would move nothing in the image).
  PartFrame part_frame = PartFrame::Object;
  // true (needs label_input, viewpoints 1 and an ownership table, set_part_owner): each part's
  // centre is placed in the image at the centroid of its owned clusters' cells in the image's
  // pseudo-labels, plus an offset of at most anchor_reach (normalised image units, the crop
  // spans [-1, 1]) that the network predicts; its depth as in the camera frame. A part whose
  // clusters are absent from an image falls back to a free image position (anywhere in
  // [-1.2, 1.2]). Per-image refinement of the centres alone recovers most of what refining
  // everything does (docs/BENCHMARKS.md, "Anchored part centres"): a feed-forward network
  // regressing 16 centres from a 4 x 4 map places thin parts only roughly.
  bool anchor = false;
  double anchor_reach = 0.25;
  // true (model.part_frame object, no model.anchor): a learned local correction of each part's
  // image position. A 1 x 1 convolution on encoder stage heatmap_stage (1-based; at the
  // 128-pixel input stage 1 is 32 x 32) scores every cell for every part; the part's centre,
  // as the MLP predicts it, is projected through the predicted camera to p0, and its image
  // position becomes the soft-argmax of the scores plus the log of a Gaussian of standard
  // deviation heatmap_sigma (normalised image units, the crop spans [-1, 1]) about p0; its depth
  // in the camera frame is kept. The convolution starts at zero, so the model starts where it
  // would without the option (the Gaussian's soft-argmax is p0); it learns to move each part
  // towards the cells that image's own features say it belongs to, a few sigma at most, where
  // the MLP reading a 4 x 4 map places thin parts only roughly (docs/BENCHMARKS.md, "Where
  // refinement's gain is": moving the centres alone recovers most of what refinement gains).
  bool part_heatmaps = false;
  int64_t heatmap_stage = 1;
  double heatmap_sigma = 0.15;
  int64_t seed = 0;  // the template's initial arrangement
};

}  // namespace lepard::model
