// Clear, actionable text for every error the server (or the network) can produce.

const BY_STATUS = {
  0: ['Server unreachable', 'Check that `make serve` is still running, then retry.'],
  400: ['Bad request', ''],
  401: ['API key needed', 'The key is missing or not valid for this server. Enter it again.'],
  404: ['Not found', 'The session or segment no longer exists (idle sessions expire).'],
  409: ['Conflict', 'The segment was changed elsewhere; the view has been brought up to date.'],
  413: ['Too large', 'The file is larger than this server accepts.'],
  415: ['Unsupported file', 'Use NIfTI, NRRD, a DICOM series (files or one zip), PNG or JPEG.'],
  422: ['Not accepted', ''],
  423: ['Session busy', 'Another change to this session is running; try again in a moment.'],
  500: ['Server error', 'Something went wrong on the server; its logs have this request id.'],
  429: ['Limit reached', ''],
  503: ['Service unavailable', 'The session store cannot be reached; retry shortly.'],
  504: ['Took too long', 'The change was stopped and nothing was applied; try a smaller region.'],
  507: ['Storage full', 'Nothing was saved; delete sessions you no longer need, then retry.'],
};

const BY_CODE = {
  nothing_to_undo: ['Nothing to undo', 'This segment has no earlier revision.'],
  nothing_to_redo: ['Nothing to redo', 'No change of this segment was undone since its last change.'],
  revision_conflict: BY_STATUS[409],
  job_conflict: ['Job not applied', 'Run it again on the current mask.'],
  empty_result: ['Nothing applied', 'The result was empty, so the segment is unchanged. Add foreground scribbles and fine-tune again, or draw a new box.'],
  worker_lost: ['Job lost', 'The worker running it stopped; the segment is unchanged. Try again.'],
  empty_segment: ['Nothing to check', 'Hints look for errors in a mask: segment something first.'],
  model_unavailable: ['No model for this', 'See the models panel for the trained models this server has.'],
};

/** {title, detail, message} for an ApiError (or any Error). */
export function describe(err) {
  const [title, hint] = BY_CODE[err.code] ?? BY_STATUS[err.status] ??
    [err.status ? `Error ${err.status}` : 'Error', ''];
  const text = err.message && !/[.!?)]$/.test(err.message) ? `${err.message}.` : err.message;
  const parts = [text, hint].filter(Boolean);
  if (err.requestId) parts.push(`(request ${err.requestId})`);
  return { title, detail: parts.join(' '), message: `${title}: ${parts.join(' ')}` };
}
