// Segment name presets for common structures, with the colours 3D Slicer's terminology (and
// TotalSegmentator's Slicer extension) gives them, so segments look alike across tools.

export const ORGAN_PRESETS = [
  ['liver', '#dd8265'],
  ['spleen', '#9d6ca2'],
  ['kidney right', '#b96553'],
  ['kidney left', '#b96553'],
  ['pancreas', '#f9b46f'],
  ['aorta', '#e0614c'],
  ['inferior vena cava', '#0097ce'],
  ['portal vein', '#0097ce'],
  ['gallbladder', '#8b9662'],
  ['stomach', '#d88469'],
  ['esophagus', '#d3ab8f'],
  ['duodenum', '#ffe2b1'],
  ['small bowel', '#cda88c'],
  ['colon', '#cc9e8e'],
  ['urinary bladder', '#de9a84'],
  ['prostate', '#e69e8c'],
  ['adrenal gland right', '#f4d631'],
  ['adrenal gland left', '#f4d631'],
  ['heart', '#ce6e54'],
  ['lung right', '#c5a591'],
  ['lung left', '#c5a591'],
  ['brain', '#fae6dc'],
  ['vertebra', '#f1d691'],
  ['bone', '#f1d691'],
  ['tumor', '#90ee90'],
  ['lesion', '#ffff00'],
  ['cyst', '#cce0ff'],
];

const BY_NAME = new Map(ORGAN_PRESETS.map(([name, color]) => [name, color]));

/** The preset colour of a name ("Liver", " liver " match "liver"), or null. */
export function presetColor(name) {
  return BY_NAME.get(String(name ?? '').trim().toLowerCase()) ?? null;
}
