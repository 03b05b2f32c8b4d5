// Units, sensible ranges and one-line meanings of the method parameters the server lists in
// /v1/capabilities (by name: the same name means the same thing across methods). Parameters
// not in the table are shown as they come, without a unit or range.

const mm = (min, max, hint) => ({ unit: 'mm', min, max, hint });
const ratio = (hint, max = 1) => ({ unit: '', min: 0, max, hint });

export const PARAM_SPECS = {
  margin_mm: mm(0, 500, 'how far from the clicks the region of interest reaches'),
  box_margin_mm: mm(0, 100, 'margin added around a box'),
  smooth_mm: mm(0, 10, 'smoothing of the image before the geodesic distance'),
  seed_radius_mm: mm(0, 50, 'radius of the seed area around each click'),
  influence_mm: mm(1, 500, 'reach of a correction click'),
  max_influence_mm: mm(1, 1000, 'largest reach of a correction click'),
  roi_margin_mm: mm(1, 500, 'margin of the region of interest per slice'),
  dilation_mm: mm(0, 100, 'how far the previous slice\'s mask is grown as a prior'),
  unlike_bg_radius_mm: mm(0, 200, 'radius of background unlike the object'),
  flag_centroid_mm: mm(0, 200, 'centroid shift that flags a slice for review'),
  min_area_mm2: { unit: 'mm²', min: 0, max: 100000, hint: 'propagation stops below this area' },
  lamb: { unit: '', min: 0, max: 100, hint: 'weight of the smoothness (pairwise) term' },
  geodesic_lamb: ratio('0 Euclidean distance … 1 intensity-weighted geodesic distance'),
  sigma: { unit: '', min: 0.001, max: 10, hint: 'intensity scale of the edge term (normalised intensities)' },
  margin_fraction: ratio('margin as a fraction of the object size', 10),
  intensity_k: { unit: 'SD', min: 0.1, max: 10, hint: 'intensity band around the seeds, in standard deviations' },
  seed_k: { unit: 'SD', min: 0, max: 10, hint: 'intensity band of propagated seeds' },
  intensity_gate: ratio('how strictly intensities gate the region'),
  euclid_weight: ratio('weight of the plain distance in the geodesic'),
  border_cost: { unit: '', min: 0, max: 10, hint: 'geodesic distance the ROI border starts at as a weak background seed (boundary crossings)' },
  coarse_voxels: { unit: 'voxels', min: 1000, max: 100000000, step: 1000, hint: 'above this, solve on a coarser grid first' },
  coarse_geodesic_voxels: { unit: 'voxels', min: 1000, max: 100000000, step: 1000, hint: 'above this, geodesic distances on a coarser grid' },
  coarse_pixels: { unit: 'pixels', min: 100, max: 10000000, step: 100, hint: 'above this, solve a slice on a coarser grid' },
  influence_depth: { unit: '×', min: 0, max: 20, hint: 'or a correction reaches this × its depth in the error' },
  prior_margin: ratio('confidence margin of the previous mask (foreground)', 0.5),
  prior_margin_bg: ratio('confidence margin of the previous mask (background)', 0.5),
  absent_cost: { unit: '', min: 0.01, max: 10, hint: 'distance to the foreground with no foreground click (boundary crossings)' },
  absent_distance: { unit: '', min: 0.01, max: 100, hint: 'distance used where no cue reaches' },
  merge_margin: { unit: 'voxels', min: 0, max: 16, step: 1, hint: 'gap bridged when merging a correction' },
  max_grow: { unit: '', min: 0, max: 8, step: 1, hint: 'region-of-interest growths while a change touches its border' },
  box_intensity_k: { unit: 'SD', min: 0, max: 10, hint: '3D box: intensity band around the box centre\'s median, in robust SDs (0: mean and SD)' },
  box_lamb: { unit: '', min: 0, max: 100, hint: 'box: weight of the smoothness (pairwise) term' },
  box_intensity_k_2d: { unit: 'SD', min: 0.1, max: 10, hint: '2D box: intensity band around the box centre\'s mean, in SDs' },
  box_gate_2d: ratio('2D box: how strictly intensities gate the region'),
  box_model_min_mm: mm(0, 100, '2D box: its own intensity band only on pixels at least this coarse'),
  margin: { unit: 'voxels', min: 0, max: 64, step: 1, hint: 'margin around the box' },
  margin_voxels: { unit: 'voxels', min: 0, max: 100, step: 1, hint: 'margin around the points' },
  threshold: { unit: '', min: 0.01, max: 0.99, hint: 'probability above which a voxel is foreground' },
  length_weight: { unit: '', min: 0, max: 10, hint: 'weight of path length in the geodesic' },
  min_area_ratio: ratio('propagation stops when the area falls below this fraction', 0.99),
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
  // geodesic-graphcut: the local refinement window
  heard_distance: { unit: '', min: 1, max: 40, hint: 'past this geodesic distance (boundary crossings + reach lengths) a new click has no weight' },
  cut_margin: { unit: 'voxels', min: 0, max: 64, step: 1, hint: 'margin of the local graph cut around the clicks\' reach' },
  refine_voxels: { unit: 'voxels', min: 1000, max: 100000000, step: 1000, hint: '3D: a larger refinement window solves at half in-plane resolution' },
  // the editing tools' adjust
  adjust_lambda: ratio('adjust: boundary distance 0 Euclidean … 1 intensity-weighted'),
  // refinenet clicks
  reach_depths: { unit: '×', min: 0, max: 100, hint: 'the refiner\'s answer is kept within this × the click\'s depth in the error (0: no limit)' },
  reach_min_mm: mm(0, 500, 'but at least this far around a click'),
  snap: { unit: '', min: 0, max: 100, hint: 'weight of snapping the refiner\'s answer to the slice\'s edges (0: plain threshold)' },
  snap_sigma: { unit: '', min: 0.005, max: 10, hint: 'intensity scale of the snap\'s edge term (normalised intensities)' },
  // slicewise: start, propagation and tie
  axis: { unit: '', min: -1, max: 2, step: 1, hint: 'slice axis 0 / 1 / 2 (z / y / x); -1: the one of the coarsest spacing' },
  candidates: { unit: 'slices', min: 1, max: 64, step: 1, hint: 'box: P-Net on this many central slices, the largest foreground wins' },
  points_margin_mm: mm(0, 100, 'points: extent around the points (along the slice axis too)'),
  outside: ratio('probability on slices the propagation did not reach', 0.5),
  geodesic_weight: ratio('box: weight of the model-free 3D box in the slice-wise tie'),
  pnet_weight: ratio('weight of P-Net re-run on each propagated slice\'s box'),
  refit_margin: { unit: 'voxels', min: 0, max: 64, step: 1, hint: 'margin of the box P-Net re-runs on' },
  // slicewise: a first click
  click_pnet: ratio('first click: weight of P-Net on the click mask\'s box'),
  click_margin_mm: mm(0, 500, 'first click: in-plane reach around the start mask'),
  click_margin_fraction: ratio('first click: or this fraction of the start mask\'s extent, if larger', 10),
  click_reach_mm: mm(0, 5000, 'first click: reach along the slice axis each way (0: the image)'),
  click_reach_ratio: { unit: '×', min: 0, max: 100, hint: 'first click: or this × the start mask\'s diameter, if smaller (0: no bound)' },
  click_geodesic_weight: ratio('first click: weight of the model-free 3D click in the tie'),
  click_pnet_weight: ratio('first click: weight of P-Net re-run on each propagated slice\'s box'),
  click_passes: { unit: '', min: 1, max: 2, step: 1, hint: 'first click: 2 propagates again when the tie moved the start slice' },
  click_pass_dice: ratio('first click: ... to a Dice below this against the click\'s mask'),
  // slicewise: a correcting click
  correct_margin: { unit: 'voxels', min: 0, max: 64, step: 1, hint: 'a neighbour\'s change must touch the previous slice\'s within this' },
  correct_min_voxels: { unit: 'voxels', min: 1, max: 1000000, step: 1, hint: 'the correction stops at a slice changing fewer voxels' },
  correct_reach_ratio: { unit: '×', min: 0, max: 100, hint: 'the correction reaches this × its change\'s diameter along the axis (0: the object\'s end)' },
};

/** {unit, min, max, step, hint} for a parameter name, or null when unknown. */
export function paramSpec(name) {
  return PARAM_SPECS[name] ?? null;
}
