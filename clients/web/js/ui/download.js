// Downloading the session's label map: the browser saves a file only through a link it follows.

export async function downloadLabels(app, format = 'nifti') {
  const { name, blob } = await app.session.exportLabels(format);
  const url = URL.createObjectURL(blob);
  Object.assign(document.createElement('a'), { href: url, download: name }).click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000); // revoking at once can cancel the download
}
