// The viewer as an MCP App: the host page talks to it with the MCP Apps postMessage
// protocol (JSON-RPC 2.0: ui/initialize, ui/notifications/initialized, then tool-input and
// tool-result). It feeds canvas.js the same model the Jupyter widget does, and builds the
// controls the widget makes in Python: findings, window, slice, zoom, export, coordinates.
// mcp_server/viewer_app.py inlines canvas.js and then this file into one <script>, so
// `el`, `render` and `exportCanvas` come from canvas.js.

const CONFIG = JSON.parse(document.getElementById("medmo-config").textContent);
const APPS_PROTOCOL = "2026-01-26";

// -- the model canvas.js draws from (anywidget's shape: get, set, on, save_changes) ----

function createModel(values) {
  const data = { ...values };
  const handlers = {};
  return {
    get: (key) => data[key],
    set(key, value) {
      if (data[key] === value) return;
      data[key] = value;
      for (const fn of handlers["change:" + key] || []) fn();
    },
    on(event, fn) {
      (handlers[event] = handlers[event] || []).push(fn);
    },
    save_changes() {},
  };
}

// -- JSON-RPC over postMessage with the host ------------------------------------------

function createBridge(host) {
  let nextId = 1;
  const pending = new Map();
  const onNotification = {};
  const onRequest = {};
  const post = (message) => host.postMessage(message, "*");

  window.addEventListener("message", (event) => {
    // Only the host may drive the view; anything else on the page is ignored.
    if (event.source !== host) return;
    const msg = event.data;
    if (!msg || msg.jsonrpc !== "2.0") return;
    if (msg.method === undefined) {
      const waiting = pending.get(msg.id);
      if (!waiting) return;
      pending.delete(msg.id);
      if (msg.error) waiting.reject(new Error(msg.error.message || "request failed"));
      else waiting.resolve(msg.result);
      return;
    }
    if (msg.id !== undefined) {
      const handler = onRequest[msg.method];
      if (!handler) {
        post({ jsonrpc: "2.0", id: msg.id, error: { code: -32601, message: `Unknown method ${msg.method}` } });
        return;
      }
      Promise.resolve()
        .then(() => handler(msg.params || {}))
        .then(
          (result) => post({ jsonrpc: "2.0", id: msg.id, result: result || {} }),
          (err) => post({ jsonrpc: "2.0", id: msg.id, error: { code: -32603, message: String(err && err.message) } }),
        );
      return;
    }
    const handler = onNotification[msg.method];
    if (handler) handler(msg.params || {});
  });

  return {
    request(method, params) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        post({ jsonrpc: "2.0", id, method, params });
      });
    },
    notify(method, params) {
      post({ jsonrpc: "2.0", method, params });
    },
    on(method, fn) {
      onNotification[method] = fn;
    },
    handle(method, fn) {
      onRequest[method] = fn;
    },
  };
}

// -- the page --------------------------------------------------------------------------

function button(parent, text, title) {
  const b = el("button", null, parent);
  b.type = "button";
  b.textContent = text;
  if (title) b.title = title;
  return b;
}

function buildPage(root) {
  root.className = "medmo-app";
  const ui = {};
  ui.title = el("div", "medmo-app-title", root);
  ui.title.textContent = "Waiting for the result…";
  const main = el("div", "medmo-app-main", root);
  ui.canvas = el("div", "medmo-app-canvas", main);
  const side = el("div", "medmo-app-side", main);
  el("b", null, side).textContent = "Findings";
  ui.findings = el("div", "medmo-findings", side);
  ui.info = el("div", "medmo-info", side);
  ui.pointer = el("div", "medmo-pointer", side);
  ui.selected = el("div", "medmo-box-detail", side);

  ui.windowRow = el("div", "medmo-row medmo-window", root);
  ui.windowRow.hidden = true;
  el("span", null, ui.windowRow).textContent = "Window";
  ui.preset = el("select", "medmo-preset", ui.windowRow);
  ui.preset.title = "Window preset";
  ui.width = el("input", "medmo-width", ui.windowRow);
  ui.width.type = "number";
  ui.width.title = "Window width";
  ui.level = el("input", "medmo-level", ui.windowRow);
  ui.level.type = "number";
  ui.level.title = "Window level";
  ui.apply = button(ui.windowRow, "Apply", "Show the image with this width and level");

  ui.sliceRow = el("div", "medmo-row medmo-slice", root);
  ui.sliceRow.hidden = true;
  ui.sliceName = el("span", null, ui.sliceRow);
  ui.slice = el("input", "medmo-slider", ui.sliceRow);
  ui.slice.type = "range";
  ui.slice.min = "0";
  ui.sliceText = el("span", "medmo-slice-text", ui.sliceRow);

  const toolbar = el("div", "medmo-row medmo-toolbar", root);
  ui.fit = button(toolbar, "Fit", "Fit the image to the view");
  ui.zoomOut = button(toolbar, "−", "Zoom out");
  ui.zoomIn = button(toolbar, "+", "Zoom in");
  ui.exportButton = button(toolbar, "Export PNG", "Save the image with its visible boxes");
  ui.status = el("div", "medmo-status", root);
  return ui;
}

// -- the viewer ------------------------------------------------------------------------

function startViewer(root) {
  const ui = buildPage(root);
  const bridge = createBridge(window.parent);
  const model = createModel({
    image_src: "",
    image_key: "",
    image_width: 0,
    image_height: 0,
    boxes: [],
    selected: -1,
    hovered: -1,
    zoom: 0,
    max_height: 440,
    export_count: 0,
    export_name: "medmo.png",
  });
  render({ model, el: ui.canvas });

  const state = {
    host: {}, // the ui/initialize result
    result: null, // the tool result's structured content
    view: null, // the last render tool result's structured content
    toggles: [],
    window: undefined, // the window asked for ("bone", "400/40"); undefined: as loaded
    position: undefined, // the slice or frame asked for
    seq: 0,
    pinned: "",
  };
  let renders = 0;

  function setStatus(text, isError) {
    ui.status.textContent = text || "";
    ui.status.classList.toggle("medmo-error", !!isError);
  }

  function textOf(callResult) {
    return (callResult.content || [])
      .filter((c) => c.type === "text")
      .map((c) => c.text)
      .join("\n");
  }

  function imageOf(callResult) {
    const block = (callResult.content || []).find((c) => c.type === "image");
    return block ? `data:${block.mimeType};base64,${block.data}` : "";
  }

  // -- boxes and findings --

  function pushBoxes() {
    const view = state.view;
    const boxes = (state.result && state.result.boxes) || [];
    const onSlice = !view || view.position === view.box_position;
    // A box may name its own slice (findings across a volume); else it lies on the slice
    // the result was about.
    const shownOn = (b) => (!view || b.slice == null ? onSlice : b.slice === view.position);
    model.set(
      "boxes",
      boxes.map((b, i) => {
        const style = (view && view.boxes[i]) || {};
        return {
          label: b.label,
          x1: b.x1,
          y1: b.y1,
          x2: b.x2,
          y2: b.y2,
          color: style.color || "#ff4136",
          detail: style.detail || b.label,
          visible: shownOn(b) && state.toggles[i],
        };
      }),
    );
    if (boxes.length && view && !boxes.some(shownOn)) {
      setStatus(
        view.box_position == null
          ? `The boxes lie on other ${view.axis}s.`
          : `The boxes were found on ${view.axis} ${view.box_position}; move back to it to see them.`,
      );
    } else if (!ui.status.classList.contains("medmo-error")) {
      setStatus("");
    }
  }

  function buildFindings() {
    ui.findings.replaceChildren();
    const boxes = (state.result && state.result.boxes) || [];
    if (!boxes.length) {
      el("i", null, ui.findings).textContent = "No boxes.";
      return;
    }
    boxes.forEach((b, i) => {
      const row = el("label", "medmo-finding", ui.findings);
      const check = el("input", null, row);
      check.type = "checkbox";
      check.checked = state.toggles[i];
      check.dataset.index = String(i);
      const swatch = el("span", "medmo-swatch", row);
      swatch.style.background = (state.view && state.view.boxes[i] && state.view.boxes[i].color) || "#888";
      el("span", null, row).textContent = `${i + 1}. ${b.label}`;
      check.addEventListener("change", () => {
        state.toggles[i] = check.checked;
        pushBoxes();
      });
    });
  }

  // -- the picture, through the app-only render tool --

  function renderArguments() {
    const args = { result: state.result.result_uri };
    if (state.window !== undefined) args.window = state.window;
    if (state.position !== undefined && state.view && state.view.axis) {
      args[state.view.axis] = state.position;
    }
    return args;
  }

  async function refresh() {
    const seq = ++state.seq;
    root.dataset.busy = "true";
    let answer;
    try {
      answer = await bridge.request("tools/call", { name: CONFIG.viewTool, arguments: renderArguments() });
    } catch (err) {
      if (seq !== state.seq) return;
      root.dataset.busy = "false";
      setStatus(`The image could not be rendered: ${err.message}`, true);
      return;
    }
    if (seq !== state.seq) return; // a newer request was made meanwhile
    root.dataset.busy = "false";
    if (answer.isError) {
      setStatus(textOf(answer), true);
      return;
    }
    applyView(answer.structuredContent, imageOf(answer));
  }

  function applyView(view, src) {
    const first = state.view === null;
    state.view = view;
    model.set("image_width", view.width);
    model.set("image_height", view.height);
    model.set("export_name", view.export_name);
    const win = view.window && view.window.width != null ? `${view.window.width}/${view.window.level}` : "";
    model.set("image_key", `${view.axis || "image"}:${view.position ?? ""}|${win}`);
    model.set("image_src", src);
    if (first) buildFindings();
    pushBoxes();
    showWindow(view);
    showSlice(view);
    showInfo(view);
    renders += 1;
    root.dataset.renders = String(renders);
    root.dataset.state = "ready";
    size();
  }

  function showInfo(view) {
    const parts = [`${view.width} × ${view.height} px`];
    if (view.pixel_spacing) {
      const [row, col] = view.pixel_spacing;
      parts.push(`${(view.width * col).toFixed(0)} × ${(view.height * row).toFixed(0)} mm`);
    }
    if (view.modality) parts.unshift(view.modality);
    ui.info.textContent = parts.join(" · ");
  }

  // -- window --

  function showWindow(view) {
    ui.windowRow.hidden = !view.windowable;
    if (!view.windowable) return;
    if (!ui.preset.options.length) {
      const option = (value, text) => {
        const o = el("option", null, ui.preset);
        o.value = value;
        o.textContent = text;
      };
      option("", "as loaded");
      for (const p of view.presets) option(p.name, `${p.name} (${p.width}/${p.level})`);
      option("custom", "custom");
    }
    const w = view.window || {};
    if (w.width != null) ui.width.value = String(w.width);
    if (w.level != null) ui.level.value = String(w.level);
    if (state.window === undefined) ui.preset.value = "";
    else if (view.presets.some((p) => p.name === state.window)) ui.preset.value = state.window;
    else ui.preset.value = "custom";
    root.dataset.window = w.width != null ? `${w.width}/${w.level}` : "";
  }

  ui.preset.addEventListener("change", () => {
    const value = ui.preset.value;
    if (value === "custom") return;
    state.window = value === "" ? undefined : value;
    refresh();
  });
  ui.apply.addEventListener("click", () => {
    const width = Number(ui.width.value);
    const level = Number(ui.level.value);
    if (!(width > 0) || !Number.isFinite(level)) {
      setStatus("The window width must be a positive number and the level a number.", true);
      return;
    }
    state.window = `${width}/${level}`;
    ui.preset.value = "custom";
    refresh();
  });

  // -- slices --

  function showSlice(view) {
    const many = view.axis && view.count > 1;
    ui.sliceRow.hidden = !many;
    if (!many) return;
    ui.sliceName.textContent = view.axis === "slice" ? "Slice" : "Frame";
    ui.slice.max = String(view.count - 1);
    ui.slice.value = String(view.position);
    ui.sliceText.textContent = `${view.position} / ${view.count - 1}`;
    root.dataset.position = String(view.position);
  }

  ui.slice.addEventListener("input", () => {
    ui.sliceText.textContent = `${ui.slice.value} / ${ui.slice.max}`;
  });
  ui.slice.addEventListener("change", () => {
    state.position = Number(ui.slice.value);
    refresh();
  });

  // -- coordinates under the pointer --

  const stage = ui.canvas.querySelector(".medmo-stage");

  function pointerText(event) {
    const rect = stage.getBoundingClientRect();
    const view = state.view;
    if (!view || rect.width <= 0) return "";
    const x = ((event.clientX - rect.left) / rect.width) * view.width;
    const y = ((event.clientY - rect.top) / rect.height) * view.height;
    let text = `x ${x.toFixed(0)}, y ${y.toFixed(0)} px`;
    if (view.pixel_spacing) {
      const [row, col] = view.pixel_spacing;
      text += `\nx ${(x * col).toFixed(1)}, y ${(y * row).toFixed(1)} mm`;
    }
    return text;
  }

  stage.addEventListener("mousemove", (event) => {
    ui.pointer.textContent = pointerText(event) + (state.pinned ? `\nPinned: ${state.pinned}` : "");
  });
  stage.addEventListener("mouseleave", () => {
    ui.pointer.textContent = state.pinned ? `Pinned: ${state.pinned}` : "";
  });
  stage.addEventListener("click", (event) => {
    state.pinned = pointerText(event).replace("\n", " · ");
    ui.pointer.textContent = `Pinned: ${state.pinned}`;
  });

  function showSelected() {
    const i = model.get("selected") >= 0 ? model.get("selected") : model.get("hovered");
    const box = model.get("boxes")[i];
    ui.selected.textContent = box ? `Box ${i + 1}: ${box.detail}` : "";
  }
  model.on("change:selected", showSelected);
  model.on("change:hovered", showSelected);

  // -- zoom and export --

  ui.fit.addEventListener("click", () => model.set("zoom", 0));
  function zoomBy(factor) {
    let current = model.get("zoom");
    if (current <= 0) {
      // fitted: zoom from the size shown now (small images are scaled up to fit)
      const w = Math.max(model.get("image_width"), 1);
      current = ui.canvas.querySelector(".medmo-stage").getBoundingClientRect().width / w;
    }
    model.set("zoom", Math.min(Math.max(current * factor, 0.05), 16));
  }
  ui.zoomIn.addEventListener("click", () => zoomBy(1.25));
  ui.zoomOut.addEventListener("click", () => zoomBy(0.8));

  ui.exportButton.addEventListener("click", async () => {
    const img = ui.canvas.querySelector("img.medmo-image");
    if (!state.view || !img) return;
    const url = exportCanvas(model, img).toDataURL("image/png");
    const name = model.get("export_name");
    const caps = state.host.hostCapabilities || {};
    if (caps.downloadFile) {
      // Sandboxed views may not download themselves: the host saves the file.
      try {
        await bridge.request("ui/download-file", {
          contents: [{ type: "resource", resource: { uri: `file:///${name}`, mimeType: "image/png", blob: url.split(",")[1] } }],
        });
        setStatus(`Exported ${name}.`);
      } catch (err) {
        setStatus(`The host did not save ${name}: ${err.message}`, true);
      }
      return;
    }
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
  });

  // -- size and host context --

  let lastSize = "";
  function size() {
    const doc = document.documentElement;
    const width = Math.ceil(doc.scrollWidth);
    const height = Math.ceil(doc.scrollHeight);
    const key = `${width}x${height}`;
    if (key === lastSize) return;
    lastSize = key;
    bridge.notify("ui/notifications/size-changed", { width, height });
  }

  function applyContext(context) {
    if (!context) return;
    if (context.theme) document.documentElement.dataset.theme = context.theme;
    const vars = (context.styles && context.styles.variables) || {};
    for (const [name, value] of Object.entries(vars)) {
      if (value) document.documentElement.style.setProperty(name, value);
    }
    const dims = context.containerDimensions || {};
    const height = dims.height || dims.maxHeight;
    // room for the title and the control rows under the image
    if (height) model.set("max_height", Math.max(160, Math.min(720, height - 190)));
  }

  // -- the protocol --

  bridge.on("ui/notifications/tool-input", (params) => {
    const args = params.arguments || {};
    ui.title.textContent = args.targets ? `Looking for ${[].concat(args.targets).join(", ")}…` : "Working…";
  });
  bridge.on("ui/notifications/tool-result", (result) => {
    const data = result.structuredContent || {};
    const boxes = data.boxes || [];
    ui.title.textContent = `${data.task || "result"}: ${boxes.length} box(es)`;
    setStatus(result.isError ? textOf(result) : "", !!result.isError);
    if (!data.result_uri) {
      // Nothing held to render again: show the picture that came with the result.
      model.set("image_src", imageOf(result));
      root.dataset.state = "static";
      return;
    }
    state.result = data;
    state.view = null;
    state.toggles = boxes.map(() => true);
    state.window = undefined;
    state.position = undefined;
    refresh();
  });
  bridge.on("ui/notifications/tool-cancelled", (params) => {
    setStatus(`The call was cancelled${params.reason ? `: ${params.reason}` : "."}`, true);
  });
  bridge.on("ui/notifications/host-context-changed", applyContext);
  bridge.handle("ui/resource-teardown", () => ({}));
  bridge.handle("ping", () => ({}));

  (async () => {
    state.host = await bridge.request("ui/initialize", {
      protocolVersion: APPS_PROTOCOL,
      appInfo: { name: "medmo-viewer", version: CONFIG.version },
      appCapabilities: { availableDisplayModes: ["inline"] },
    });
    applyContext(state.host.hostContext);
    bridge.notify("ui/notifications/initialized", {});
    root.dataset.state = "initialized";
    new ResizeObserver(size).observe(document.documentElement);
    size();
  })().catch((err) => setStatus(`The host did not answer: ${err.message}`, true));
}

startViewer(document.getElementById("medmo-app"));
