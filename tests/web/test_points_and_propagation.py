"""The viewer's model and job tools in a real browser on the shared CT: interior margin points
(MIDeepSeg) placed with clicks and sent with Enter paint overlay inside the reference liver and
refine with clicks; a propagation shows a progress bar whose value changes and ends with
overlay on other slices; slices lock and unlock from the viewer; a BIFSeg box is fine-tuned
(unsupervised, then with a scribble collected in the viewer) as a job."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from tests.web.conftest import OUTPUT
from tests.web.test_viewer import api, deepest_point, server_mask


def margin_points(mask2d: np.ndarray, inward: int = 2) -> list[tuple[int, int]]:
    """(row, col) of the top, bottom, left and right extreme points of the organ moved `inward`
    voxels inside (extreme points of the mask eroded that much): MIDeepSeg's interior margin
    points."""
    labels, n = ndimage.label(mask2d)
    largest = labels == 1 + int(np.argmax(ndimage.sum(mask2d, labels, range(1, n + 1))))
    inner = ndimage.binary_erosion(largest, iterations=inward)
    rows, cols = np.nonzero(inner)
    picks = [np.argmin(rows), np.argmax(rows), np.argmin(cols), np.argmax(cols)]
    return [(int(rows[i]), int(cols[i])) for i in picks]


def test_interior_margin_points_segment_the_liver_and_clicks_refine_it(viewer, ct_liver):
    session, reference, z = ct_liver
    liver = reference[z]
    assert viewer.page.locator(
        '#toolbar [data-tool="points"]'
    ).is_visible()  # capabilities list `points`
    model = viewer.page.locator("#models .model-list li", has_text="mideepseg-2d-egd")
    assert model.count() == 1 and "Dice" in model.inner_text()
    encoding = viewer.page.locator("#models .encoding select")
    assert encoding.input_value() == "egd"  # the method's default
    options = encoding.locator("option").evaluate_all("(os) => os.map((o) => o.value)")
    assert "egd" in options
    for other in (o for o in options if o != "egd"):  # a cue encoding goes with the interaction
        encoding.select_option(other)
        assert viewer.page.evaluate("window.medseg.methodParams.mideepseg.encoding") == other
        encoding.select_option("egd")
        assert viewer.page.evaluate("window.medseg.methodParams.mideepseg.encoding") is None

    viewer.key("i")
    points = margin_points(liver)
    for row, col in points:
        viewer.click("z", row, col)
    assert viewer.page.evaluate("window.medseg.tool.placed()") == 4
    markers = viewer.overlay("z")  # the points are drawn as yellow markers
    assert 4 <= markers.sum() < 200 and all(markers[r, c] for r, c in points)
    assert viewer.segments() == []  # nothing is sent before Enter
    viewer.page.screenshot(path=str(OUTPUT / "points-placed.png"))
    viewer.key("Enter")
    viewer.page.wait_for_function(
        "window.medseg.segments.length === 1 && window.medseg.segments[0].revision > 1"
    )
    viewer.settle()
    painted = viewer.overlay("z")
    inside = (painted & liver).sum() / max(painted.sum(), 1)
    dice = 2 * (painted & liver).sum() / (painted.sum() + liver.sum())
    print(
        f"points: overlay {painted.sum()} px, inside the reference liver {inside:.3f}, "
        f"Dice {dice:.3f}"
    )
    assert painted.sum() >= 0.5 * liver.sum() and inside >= 0.85
    [segment] = viewer.segments()
    assert np.array_equal(painted, server_mask(viewer.base_url, session["id"], segment["id"])[z])
    assert viewer.page.evaluate("window.medseg.tool.refineMode()")
    viewer.page.screenshot(path=str(OUTPUT / "points-liver.png"))

    # a click now refines with the same method (IF-GC), on the segment the points made
    missed = liver & ~painted
    row, col = deepest_point(missed if missed.sum() >= 20 else liver)
    viewer.click("z", row, col)
    with api(viewer.base_url) as client:
        history = client.get(
            f"/v1/sessions/{session['id']}/segments/{segment['id']}/history"
        ).json()
    kinds = [
        (r["interaction"]["type"], r["interaction"].get("method")) for r in history["revisions"][1:]
    ]
    assert kinds == [("points", "mideepseg"), ("click", "mideepseg")], kinds


def test_propagation_shows_progress_and_paints_other_slices(viewer, ct_liver):
    session, reference, z = ct_liver
    viewer.click("z", *deepest_point(reference[z]))
    [segment] = viewer.segments()
    # a 2D interaction locks its slice: the viewer shows it without asking the server
    assert viewer.page.locator("#status .locked").is_visible()
    assert viewer.page.locator('.view[data-axis="z"] .lock').is_visible()
    # every value the bar shows (mutation records keep the old values even when batched)
    viewer.page.evaluate("""() => {
        window.progressSeen = [];
        new MutationObserver((records) => {
          for (const r of records) {
            if (r.target.tagName === 'PROGRESS') {
              window.progressSeen.push([Number(r.oldValue), r.target.max]);
              window.progressLast = [r.target.value, r.target.max];
            } else if (r.target.classList.contains('done')) {
              window.progressDone = true;
            }
          }
        }).observe(document.querySelector('#toolbar .jobs'),
                   {subtree: true, attributes: true, attributeFilter: ['value', 'class'],
                    attributeOldValue: true});
    }""")
    # count the slices painted from the job's events before it commits
    viewer.page.evaluate("""() => {
        const masks = window.medseg.masks;
        const preview = masks.preview.bind(masks);
        window.previewed = 0;
        masks.preview = (id, delta) => { window.previewed += 1; preview(id, delta); };
    }""")
    viewer.page.locator("#toolbar button.propagate").click()
    viewer.page.locator("#toolbar .jobs .progress").wait_for()
    viewer.page.screenshot(path=str(OUTPUT / "propagating.png"))
    viewer.page.wait_for_function("window.medseg.jobs.size === 0", timeout=120_000)
    viewer.settle()
    seen = viewer.page.evaluate("window.progressSeen")
    seen.append(viewer.page.evaluate("window.progressLast"))
    values = {value for value, _ in seen}
    print(
        f"progress values seen: {len(seen)} updates, {sorted(values)[:5]}...{sorted(values)[-3:]}"
    )
    assert len(values) >= 3 and max(m for _, m in seen) > 1
    assert viewer.page.evaluate("window.progressDone")  # the bar ends as done (then goes away)
    previewed = viewer.page.evaluate("window.previewed")
    assert previewed >= 3, f"{previewed} slices painted from the job's slice events"
    assert viewer.page.locator("#toolbar button.propagate").is_enabled()
    assert not viewer.error_messages()
    head = viewer.segments()[0]["revision"]
    truth = server_mask(viewer.base_url, session["id"], segment["id"])
    assert viewer.page.evaluate(f"window.medseg.masks.revision({segment['id']})") == head
    assert viewer.page.evaluate("window.medseg.masks.previews.size") == 0
    for other in (z - 3, z + 3):
        viewer.go_to("z", other)
        painted = viewer.overlay("z")
        assert painted.sum() >= 100, f"slice {other} has overlay after the propagation"
        assert np.array_equal(painted, truth[other])
        assert (painted & reference[other]).sum() / painted.sum() >= 0.8
    viewer.page.screenshot(path=str(OUTPUT / "propagated.png"))

    # lock the shown slice, then unlock it: the server's locks follow, the status shows it
    base = f"/v1/sessions/{session['id']}/segments/{segment['id']}"
    assert not viewer.page.locator("#status .locked").is_visible()
    viewer.key("l")
    viewer.page.locator("#status .locked").wait_for()
    with api(viewer.base_url) as client:
        assert z + 3 in client.get(f"{base}/locks").json()["locked_slices"]["z"]
    viewer.page.locator("#toolbar button.lock").click()
    viewer.page.locator("#status .locked").wait_for(state="hidden")
    with api(viewer.base_url) as client:
        assert z + 3 not in client.get(f"{base}/locks").json()["locked_slices"].get("z", [])

    viewer.key("?")  # the new shortcuts are in the help overlay
    help_text = viewer.page.locator("#help").inner_text()
    for entry in (
        "Points tool: send the placed points",
        "Points tool: take the last point back",
        "propagate the active segment",
        "lock / unlock the slice",
        "fine-tune the active segment",
    ):
        assert entry in help_text, entry
    viewer.page.keyboard.press("Escape")


def test_a_propagation_that_conflicts_is_reported_and_changes_nothing(viewer, ct_liver):
    session, reference, z = ct_liver
    viewer.click("z", *deepest_point(reference[z]))
    [segment] = viewer.segments()
    base = f"/v1/sessions/{session['id']}/segments/{segment['id']}"
    # an empty start slice is refused at once (422) with the server's reason
    viewer.expected_errors.add("Not accepted")
    viewer.go_to("z", 0)
    viewer.page.locator("#toolbar button.propagate").click()
    viewer.page.wait_for_function("window.medseg.messages.some((m) => m.title === 'Not accepted')")
    assert "nothing to propagate" in viewer.page.locator("#messages").inner_text()
    # the job is submitted, then the segment moves on before it commits: 409, nothing applied
    viewer.go_to("z", z)
    viewer.expected_errors.add("Job not applied")
    viewer.page.evaluate(
        """([base]) => {
        const app = window.medseg;
        const submitted = async (e) => {
          if (!['queued', 'running'].includes(e.detail.job?.state)) return;
          app.removeEventListener('job', submitted);
          await app.api.post(`${base}/undo`);  // behind the job's back
        };
        app.addEventListener('job', submitted);
    }""",
        [base],
    )
    viewer.page.locator("#toolbar button.propagate").click()
    viewer.page.wait_for_function(
        "window.medseg.messages.some((m) => m.title === 'Job not applied')", timeout=120_000
    )
    viewer.page.wait_for_function("window.medseg.jobs.size === 0")
    viewer.settle()
    text = viewer.page.locator("#messages").inner_text()
    assert "changed while the propagation ran" in text, text
    with api(viewer.base_url) as client:
        head = client.get(base).json()["revision"]
    assert viewer.page.evaluate(f"window.medseg.masks.revision({segment['id']})") == head
    assert np.array_equal(
        viewer.overlay("z"), server_mask(viewer.base_url, session["id"], segment["id"])[z]
    )


def test_a_bifseg_box_is_fine_tuned_with_a_progress_bar_and_scribbles(viewer, ct_liver):
    session, reference, z = ct_liver
    liver = reference[z]
    rows, cols = np.nonzero(liver)
    assert viewer.page.locator("#finetune").is_hidden()  # no BIFSeg result yet
    viewer.key("b")
    viewer.page.locator("#toolbar select.method").select_option("bifseg")
    viewer.drag("z", [(int(rows.min()), int(cols.min())), (int(rows.max()), int(cols.max()))])
    panel = viewer.page.locator("#finetune")
    panel.wait_for()  # shown once the history says a bifseg box made the segment
    [segment] = viewer.segments()
    base = f"/v1/sessions/{session['id']}/segments/{segment['id']}"

    panel.locator("button.unsupervised").click()
    viewer.page.locator("#toolbar .jobs .progress").wait_for()
    viewer.page.wait_for_function("window.medseg.jobs.size === 0", timeout=120_000)
    viewer.settle()
    with api(viewer.base_url) as client:
        head = client.get(f"{base}/history").json()["revisions"][-1]["interaction"]
    assert head["type"] == "finetune" and head["mode"] == "unsupervised", head
    truth = server_mask(viewer.base_url, session["id"], segment["id"])
    assert np.array_equal(viewer.overlay("z"), truth[z])

    # supervised: the Scribble tool's strokes are collected (not sent), then go with the job
    held = viewer.segments()[0]["revision"]
    panel.locator("button.collect").click()
    missed = liver & ~truth[z]
    r, c = deepest_point(missed if missed.sum() >= 20 else liver)
    viewer.drag("z", [(r, c - 2), (r, c), (r + 1, c + 2)])
    assert "1 scribble" in panel.locator(".count").inner_text()
    assert viewer.segments()[0]["revision"] == held  # the stroke was not sent as an interaction
    panel.locator("button.supervised").click()
    viewer.page.wait_for_function(
        "document.querySelector('#finetune .count').textContent.startsWith('0 ')", timeout=120_000
    )
    viewer.settle()
    with api(viewer.base_url) as client:
        history = client.get(f"{base}/history").json()["revisions"]
    assert [r["interaction"]["type"] for r in history[1:]] == ["box", "finetune", "finetune"]
    assert history[-1]["interaction"]["mode"] == "supervised"
    truth = server_mask(viewer.base_url, session["id"], segment["id"])
    assert np.array_equal(viewer.overlay("z"), truth[z])
    dice = 2 * (truth[z] & liver).sum() / (truth[z].sum() + liver.sum())
    print(f"bifseg box + fine-tuning in the viewer: liver Dice {dice:.3f}")
    viewer.page.screenshot(path=str(OUTPUT / "finetuned.png"))
