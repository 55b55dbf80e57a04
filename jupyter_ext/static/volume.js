// The findings of a volume sweep as a list: one row per 3D finding (its slices, key slice,
// extent and bounding volume in mm, centre in patient mm, an "isolated" flag), a tick box
// that shows or hides the finding on every slice and a button that jumps to its key slice.
// The rows' texts come ready-made from the server (medmo_agent/volume/display.py, the
// same code that writes the notebook's findings table); nothing here reads the sweep.
// mcp_server/viewer_app.py inlines this file after canvas.js, whose `el` it uses.

// Build the list in `container`. `rows` are the findings as the render tool sends them;
// `onToggle(id, shown)` and `onGo(id)` are called when the user acts on a row. Returns
// `mark(highlighted, hidden)`, which restyles the rows for the finding highlighted and
// the set of hidden ones.
function volumeFindings(container, rows, { onToggle, onGo }) {
  container.replaceChildren();
  if (!rows.length) {
    el("i", null, container).textContent = "No findings in this volume.";
    return () => {};
  }
  const byId = new Map();
  for (const f of rows) {
    const row = el("div", "medmo-finding medmo-volume-finding", container);
    row.dataset.finding = String(f.id);
    const head = el("label", null, row);
    const check = el("input", null, head);
    check.type = "checkbox";
    check.checked = true;
    check.dataset.finding = String(f.id);
    check.title = "Show or hide this finding on every slice";
    el("span", "medmo-swatch", head).style.background = f.color;
    el("span", "medmo-finding-name", head).textContent = `#${f.id} ${f.label}`;
    if (f.isolated) {
      const badge = el("span", "medmo-isolated", head);
      badge.textContent = "isolated";
      badge.title = "Seen on one slice only: not confirmed by its neighbours";
    }
    const go = el("button", "medmo-finding-go", row);
    go.type = "button";
    go.dataset.finding = String(f.id);
    go.textContent = `key slice ${f.key_slice}`;
    go.title = `Go to slice ${f.key_slice}, where the box is largest, and highlight it`;
    const detail = el("div", "medmo-finding-detail", row);
    detail.textContent =
      `slices ${f.slices} · ${f.extent} · ${f.volume} (bounding)\n` +
      `centre ${f.centre} mm${f.frame ? " " + f.frame : ""}`;
    check.addEventListener("change", () => onToggle(f.id, check.checked));
    go.addEventListener("click", () => onGo(f.id));
    byId.set(f.id, { row, check });
  }
  return (highlighted, hidden) => {
    for (const [id, { row, check }] of byId) {
      row.classList.toggle("medmo-active", id === highlighted);
      row.classList.toggle("medmo-hidden", hidden.has(id));
      check.checked = !hidden.has(id);
    }
  };
}

// The canvas boxes of the slice shown: the render tool's boxes with those of hidden
// findings made invisible, and the index of the highlighted finding's box (-1: none).
function volumeSliceBoxes(boxes, hidden, highlighted) {
  const shown = boxes.map((b) => ({ ...b, visible: b.finding == null || !hidden.has(b.finding) }));
  const selected = boxes.findIndex((b) => b.finding != null && b.finding === highlighted);
  return { boxes: shown, selected };
}
