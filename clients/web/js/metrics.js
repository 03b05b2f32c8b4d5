// Labels for the validation metrics of a model card (/v1/models `metrics`): "dice_held_out"
// -> "held-out organs", "dice_seen_brush" -> "seen organs, after a brush edit". A key it
// does not know is shown with its underscores as spaces. No DOM here (node-testable).

const SETS = { held_out: 'held-out organs', seen: 'seen organs', all: 'all organs' };
const AFTER = {
  start: 'imperfect start mask',
  none: 'no edit',
  select: 'after a select edit',
  brush: 'after a brush edit',
  adjust: 'after an adjust edit',
};

/** The label of one Dice metric key (`dice`, `dice_<set>`, `dice_<set>_<step>`). */
export function metricLabel(key) {
  const rest = key.replace(/^dice_?/, '');
  if (!rest) return 'all cases';
  const set = Object.keys(SETS).find((s) => rest === s || rest.startsWith(`${s}_`));
  if (!set) return rest.replaceAll('_', ' ');
  const step = rest.slice(set.length + 1);
  if (!step) return SETS[set];
  return `${SETS[set]}, ${AFTER[step] ?? step.replaceAll('_', ' ')}`;
}

/** "Dice: held-out organs 0.84, seen organs 0.81" from a card's metrics; '' without Dice. */
export function diceSummary(metrics) {
  const parts = Object.entries(metrics ?? {})
    .filter(([k, v]) => k.startsWith('dice') && typeof v === 'number')
    .map(([k, v]) => `${metricLabel(k)} ${v.toFixed(2)}`);
  return parts.length ? `Dice: ${parts.join('; ')}` : '';
}
