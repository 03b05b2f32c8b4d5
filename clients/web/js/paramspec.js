// Units, sensible ranges and one-line meanings of the method parameters the server lists in
// /v1/capabilities (by name: the same name means the same thing across methods). Parameters
// not in the table are shown as they come, without a unit or range.

const mm = (min, max, hint) => ({ unit: 'mm', min, max, hint });
const ratio = (hint, max = 1) => ({ unit: '', min: 0, max, hint });

export const PARAM_SPECS = {
  margin_mm: mm(0, 500, 'how far from the clicks the region of interest reaches'),
  box_margin_mm: mm(0, 100, 'margin added around a box'),
  smooth_mm: mm(0, 10, 'smoothing of the result'),
  seed_radius_mm: mm(0, 50, 'radius of the seed area around each click'),
  influence_mm: mm(0, 500, 'reach of a correction click'),
  max_influence_mm: mm(0, 1000, 'largest reach of a correction click'),
  roi_margin_mm: mm(0, 500, 'margin of the region of interest per slice'),
  dilation_mm: mm(0, 100, 'how far the previous slice\'s mask is grown as a prior'),
  unlike_bg_radius_mm: mm(0, 200, 'radius of background unlike the object'),
  flag_centroid_mm: mm(0, 200, 'centroid shift that flags a slice for review'),
  min_area_mm2: { unit: 'mm²', min: 0, max: 100000, hint: 'propagation stops below this area' },
  lamb: { unit: '', min: 0, max: 100, hint: 'weight of the smoothness (pairwise) term' },
  geodesic_lamb: ratio('0 Euclidean distance … 1 intensity-weighted geodesic distance'),
  sigma: { unit: '', min: 0.001, max: 10, hint: 'intensity scale of the edge term (normalised intensities)' },
  margin_fraction: ratio('margin as a fraction of the object size', 10),
  intensity_k: { unit: 'SD', min: 0, max: 10, hint: 'intensity band around the seeds, in standard deviations' },
  seed_k: { unit: 'SD', min: 0, max: 10, hint: 'intensity band of propagated seeds' },
  intensity_gate: ratio('how strictly intensities gate the region'),
  euclid_weight: ratio('weight of the plain distance in the geodesic'),
  border_cost: { unit: '', min: 0, max: 10, hint: 'cost of cutting along the ROI border' },
  coarse_voxels: { unit: 'voxels', min: 1000, max: 100000000, step: 1000, hint: 'above this, solve on a coarser grid first' },
  coarse_geodesic_voxels: { unit: 'voxels', min: 1000, max: 100000000, step: 1000, hint: 'above this, geodesic distances on a coarser grid' },
  coarse_pixels: { unit: 'pixels', min: 100, max: 10000000, step: 100, hint: 'above this, solve a slice on a coarser grid' },
  influence_depth: { unit: '', min: 0, max: 20, hint: 'depth of a correction\'s influence' },
  prior_margin: ratio('confidence margin of the previous mask (foreground)'),
  prior_margin_bg: ratio('confidence margin of the previous mask (background)'),
  absent_cost: { unit: '', min: 0, max: 100, hint: 'cost where no seed reaches' },
  absent_distance: { unit: '', min: 0, max: 100, hint: 'distance used where no cue reaches' },
  merge_margin: { unit: 'voxels', min: 0, max: 20, step: 1, hint: 'gap bridged when merging a correction' },
  max_grow: { unit: '×', min: 0, max: 100, hint: 'largest growth of a correction relative to the mask' },
  box_intensity_k: { unit: 'SD', min: 0, max: 10, hint: '3D box: intensity band around the box centre\'s median, in robust SDs (0: mean and SD)' },
  box_lamb: { unit: '', min: 0, max: 100, hint: 'box: weight of the smoothness (pairwise) term' },
  box_intensity_k_2d: { unit: 'SD', min: 0.1, max: 10, hint: '2D box: intensity band around the box centre\'s mean, in SDs' },
  box_gate_2d: ratio('2D box: how strictly intensities gate the region'),
  box_model_min_mm: mm(0, 100, '2D box: its own intensity band only on pixels at least this coarse'),
  margin: { unit: 'voxels', min: 0, max: 100, step: 1, hint: 'margin around the box' },
  margin_voxels: { unit: 'voxels', min: 0, max: 100, step: 1, hint: 'margin around the points' },
  threshold: ratio('probability above which a voxel is foreground'),
  length_weight: { unit: '', min: 0, max: 10, hint: 'weight of path length in the geodesic' },
  min_area_ratio: ratio('propagation stops when the area falls below this fraction'),
  max_slices: { unit: 'slices', min: 0, max: 10000, step: 1, hint: '0: no limit' },
  flag_area_change: ratio('relative area change that flags a slice for review', 10),
  flag_confidence: ratio('confidence below which a slice is flagged'),
  min_seed_fraction: ratio('smallest fraction of seeds kept'),
  network_weight: ratio('weight of the network against the graph cut'),
  scale_fraction: { unit: '×', min: 0, max: 10, hint: 'a correction reaches at most this × the object\'s radius' },
  unlike_spread: { unit: 'σ', min: 0, max: 10, hint: 'in 2D a background click on tissue this far from the object\'s reaches only as far as that tissue' },
  reach_depth: { unit: '×', min: 0, max: 100, hint: 'a background click removes only within this × its depth' },
  reach_margin_mm: mm(0, 1000, 'plus this much around a background click'),
  unlike_smooth_mm: mm(0, 20, 'smoothing of the intensities the unlike-tissue test compares'),
  unlike_margin_mm: mm(0, 1000, 'a 2D background click on unlike tissue removes only this near that tissue'),
  error_reach: { unit: '×', min: 0, max: 100, hint: '3D: the clicked error counts within this × the click\'s depth' },
  error_margin_mm: mm(0, 1000, '3D: plus this much around a click'),
  error_scale: { unit: '×', min: 0, max: 100, hint: '3D: and within this × the object\'s radius' },
  error_prior: ratio('3D: prior inside the clicked error (0.5: the click decides)'),
  bg_reach: { unit: '×', min: 0, max: 100, hint: '3D, no foreground click: a background click removes only within this × its depth' },
  crop_grow: { unit: '×', min: 0, max: 0.5, hint: 'context of the refiner\'s object crop, × the object\'s longer side (less: a finer grid along the outline; 0.5 as trained)' },
};

/** {unit, min, max, step, hint} for a parameter name, or null when unknown. */
export function paramSpec(name) {
  return PARAM_SPECS[name] ?? null;
}
