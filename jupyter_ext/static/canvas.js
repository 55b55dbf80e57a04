// The image with its labelled boxes, drawn as DOM elements over an <img> so that hover and
// click land on the box itself. Coordinates arrive in original-image pixels and are placed
// as percentages, so zooming only changes the stage width.
//
// Shared by two hosts: the Jupyter widget (anywidget loads this file as an ES module and
// passes its model) and the MCP App viewer (mcp_server/viewer_app.py inlines this file
// before app.js, which passes a model of the same shape: get/set/on/save_changes).

function el(tag, cls, parent) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (parent) parent.appendChild(node);
  return node;
}

// The image at full resolution with each visible box and its label drawn on it, as a
// <canvas>: what "Export PNG" saves, in either host.
function exportCanvas(model, img) {
  const w = model.get("image_width");
  const h = model.get("image_height");
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0, w, h);
  const line = Math.max(2, Math.round(Math.max(w, h) / 300));
  ctx.font = `${Math.max(12, line * 6)}px sans-serif`;
  ctx.textBaseline = "bottom";
  for (const b of model.get("boxes")) {
    if (!b.visible) continue;
    ctx.strokeStyle = b.color;
    ctx.lineWidth = line;
    ctx.strokeRect(b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1);
    const tw = ctx.measureText(b.label).width + 6;
    const th = Math.max(12, line * 6) + 4;
    const ty = b.y1 - th < 0 ? b.y1 + th : b.y1;
    ctx.fillStyle = b.color;
    ctx.fillRect(b.x1, ty - th, tw, th);
    ctx.fillStyle = "#fff";
    ctx.fillText(b.label, b.x1 + 3, ty - 2);
  }
  return canvas;
}

function render({ model, el: root }) {
  root.classList.add("medmo-canvas");
  const scroller = el("div", "medmo-scroller", root);
  const stage = el("div", "medmo-stage", scroller);
  const img = el("img", "medmo-image", stage);
  img.alt = "medical image";
  img.draggable = false;
  const layer = el("div", "medmo-layer", stage);
  const tip = el("div", "medmo-tip", root);
  tip.style.display = "none";

  function pct(v, total) {
    return total > 0 ? (100 * v) / total : 0;
  }

  function layout() {
    const w = model.get("image_width");
    const zoom = model.get("zoom");
    scroller.style.maxHeight = model.get("max_height") + "px";
    if (zoom > 0 && w > 0) {
      stage.style.width = Math.round(w * zoom) + "px";
      stage.style.maxWidth = "none";
    } else {
      // fit: as tall as max_height, never wider than the cell
      const h = model.get("image_height");
      const maxH = model.get("max_height");
      const byHeight = h > 0 ? (maxH * w) / h : w;
      // small images (a 128 px CT slice) are scaled up too, so they can be read
      stage.style.width = Math.round(byHeight) + "px";
      stage.style.maxWidth = "100%";
    }
  }

  function drawBoxes() {
    layer.replaceChildren();
    const w = model.get("image_width");
    const h = model.get("image_height");
    const selected = model.get("selected");
    model.get("boxes").forEach((b, i) => {
      if (!b.visible) return;
      const box = el("div", "medmo-box", layer);
      box.dataset.index = String(i);
      box.style.left = pct(b.x1, w) + "%";
      box.style.top = pct(b.y1, h) + "%";
      box.style.width = pct(b.x2 - b.x1, w) + "%";
      box.style.height = pct(b.y2 - b.y1, h) + "%";
      box.style.borderColor = b.color;
      if (i === selected) box.classList.add("medmo-selected");
      const tag = el("span", "medmo-tag", box);
      tag.textContent = b.label;
      tag.style.background = b.color;
      box.addEventListener("mouseenter", () => {
        tip.textContent = b.detail;
        tip.style.display = "block";
        tip.style.borderColor = b.color;
        model.set("hovered", i);
        model.save_changes();
      });
      box.addEventListener("mouseleave", () => {
        tip.style.display = "none";
        model.set("hovered", -1);
        model.save_changes();
      });
      box.addEventListener("click", (ev) => {
        ev.stopPropagation();
        model.set("selected", model.get("selected") === i ? -1 : i);
        model.save_changes();
      });
    });
    root.dataset.visibleBoxes = String(layer.childElementCount);
  }

  function setImage() {
    img.src = model.get("image_src");
    root.dataset.imageKey = model.get("image_key");
  }

  function exportPng() {
    const a = document.createElement("a");
    a.href = exportCanvas(model, img).toDataURL("image/png");
    a.download = model.get("export_name") || "medmo.png";
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  stage.addEventListener("click", () => {
    if (model.get("selected") !== -1) {
      model.set("selected", -1);
      model.save_changes();
    }
  });

  setImage();
  layout();
  drawBoxes();
  model.on("change:image_src", setImage);
  model.on("change:image_key", setImage);
  model.on("change:boxes", drawBoxes);
  model.on("change:selected", drawBoxes);
  model.on("change:zoom", layout);
  model.on("change:max_height", layout);
  model.on("change:image_width", () => { layout(); drawBoxes(); });
  model.on("change:image_height", () => { layout(); drawBoxes(); });
  model.on("change:export_count", exportPng);
}

export default { render };
