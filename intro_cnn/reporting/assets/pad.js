// The report's drawing pad: draw a digit and watch the cnn classify it, layer by layer.
//
// Everything runs here, offline. Two parts, both small enough to read:
//  1. prepare(): the MNIST recipe of intro_cnn/data/digits.py, line by line (greyscale, invert a
//     light background, crop to the ink, longest side 20 px, centre of mass at the centre);
//  2. forward(): the network, one plain loop per layer. A convolution slides each 3×3×C
//     filter over the image and, at every position, sums weight × pixel plus a bias; ReLU
//     keeps the positive part; max pooling keeps the largest of each 2×2 block; a dense
//     layer is a weighted sum of all its inputs; softmax turns scores into probabilities.
// Tensors are Float32Arrays in Keras' channels-last order: index = (y * width + x) * C + c.
// window.DigitPad exposes prepare() and forward() (the report's tests call them).
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("pad-model").textContent);
  const R = data.recipe;

  // ---------------------------------------------------------------- weights
  function floats(base64) {
    const bytes = Uint8Array.from(atob(base64), (ch) => ch.charCodeAt(0));
    return new Float32Array(bytes.buffer);
  }
  const layers = data.layers.map((layer) =>
    layer.kernel ? { ...layer, kernel: floats(layer.kernel), bias: floats(layer.bias) } : layer
  );

  // ---------------------------------------------------------------- the recipe (digits.py)
  class DigitError extends Error {}

  function backgroundLevel(grey, w, h) {
    const border = [];
    for (let x = 0; x < w; x++) border.push(grey[x], grey[(h - 1) * w + x]);
    for (let y = 1; y < h - 1; y++) border.push(grey[y * w], grey[y * w + w - 1]);
    border.sort((a, b) => a - b);
    const m = border.length >> 1;
    return border.length % 2 ? border[m] : (border[m - 1] + border[m]) / 2;
  }

  // Ink as 1, background as 0: inverted if the background is light, stretched, denoised.
  function inkMap(grey, w, h) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of grey) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    if (hi - lo < R.blankContrast) throw new DigitError("blank");
    const background = backgroundLevel(grey, w, h);
    const inverted = background > 0.5;
    const ink = new Float64Array(w * h);
    let peak = -Infinity;
    for (let i = 0; i < ink.length; i++) {
      ink[i] = inverted ? 1 - grey[i] - (1 - background) : grey[i] - background;
      peak = Math.max(peak, ink[i]);
    }
    if (peak < R.minInk) throw new DigitError("no ink");
    for (let i = 0; i < ink.length; i++) {
      const v = Math.min(Math.max(ink[i] / peak, 0), 1);
      ink[i] = v < R.inkThreshold ? 0 : v;
    }
    return ink;
  }

  // Each output pixel averages the input pixels it covers (weights: covered fractions).
  function areaMatrix(nIn, nOut) {
    const scale = nIn / nOut;
    const rows = [];
    for (let o = 0; o < nOut; o++) {
      const start = o * scale;
      const end = (o + 1) * scale;
      const row = new Float64Array(nIn);
      for (let i = Math.floor(start); i < Math.min(Math.ceil(end), nIn); i++) {
        row[i] = (Math.min(end, i + 1) - Math.max(start, i)) / scale;
      }
      rows.push(row);
    }
    return rows;
  }

  function resizeArea(image, w, h, newW, newH) {
    const rows = areaMatrix(h, newH);
    const cols = areaMatrix(w, newW);
    const out = new Float64Array(newW * newH);
    for (let oy = 0; oy < newH; oy++) {
      for (let ox = 0; ox < newW; ox++) {
        let sum = 0;
        for (let y = 0; y < h; y++) {
          if (rows[oy][y] === 0) continue;
          for (let x = 0; x < w; x++) sum += rows[oy][y] * image[y * w + x] * cols[ox][x];
        }
        out[oy * newW + ox] = sum;
      }
    }
    return out;
  }

  // grey: values in [0, 1], row by row, w × h. Returns the 28×28 input (ink = 1).
  function prepare(grey, w, h) {
    const ink = inkMap(grey, w, h);
    let top = h, left = w, bottom = 0, right = 0;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (ink[y * w + x] > 0) {
          top = Math.min(top, y);
          bottom = Math.max(bottom, y + 1);
          left = Math.min(left, x);
          right = Math.max(right, x + 1);
        }
      }
    }
    const ch = bottom - top;
    const cw = right - left;
    const crop = new Float64Array(cw * ch);
    for (let y = 0; y < ch; y++) {
      for (let x = 0; x < cw; x++) crop[y * cw + x] = ink[(top + y) * w + left + x];
    }
    const dh = ch >= cw ? R.box : Math.max(1, Math.round((ch * R.box) / cw));
    const dw = ch >= cw ? Math.max(1, Math.round((cw * R.box) / ch)) : R.box;
    const digit = resizeArea(crop, cw, ch, dw, dh);
    let peak = 0;
    for (const v of digit) peak = Math.max(peak, v);
    let total = 0, sy = 0, sx = 0;
    for (let y = 0; y < dh; y++) {
      for (let x = 0; x < dw; x++) {
        const v = digit[y * dw + x] / peak;
        digit[y * dw + x] = v;
        total += v;
        sy += v * y;
        sx += v * x;
      }
    }
    const clamp = (v, hi) => Math.min(Math.max(v, 0), hi);
    const y0 = clamp(Math.floor(R.centre - sy / total + 0.5), R.size - dh);
    const x0 = clamp(Math.floor(R.centre - sx / total + 0.5), R.size - dw);
    const out = new Float32Array(R.size * R.size);
    for (let y = 0; y < dh; y++) {
      for (let x = 0; x < dw; x++) out[(y0 + y) * R.size + x0 + x] = digit[y * dw + x];
    }
    return out;
  }

  // ---------------------------------------------------------------- the network
  const activate = {
    linear: (v) => v,
    relu: (v) => (v > 0 ? v : 0),
  };

  function conv2d(input, shape, layer) {
    const [h, w, c] = shape;
    const [kh, kw, cin, filters] = layer.shape;
    const oh = h - kh + 1;
    const ow = w - kw + 1;
    const out = new Float32Array(oh * ow * filters);
    const f = activate[layer.activation];
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) {
        for (let k = 0; k < filters; k++) {
          let sum = layer.bias[k];
          for (let dy = 0; dy < kh; dy++) {
            for (let dx = 0; dx < kw; dx++) {
              const pixel = ((y + dy) * w + (x + dx)) * c;
              const weight = (dy * kw + dx) * cin * filters + k;
              for (let ci = 0; ci < cin; ci++) {
                sum += input[pixel + ci] * layer.kernel[weight + ci * filters];
              }
            }
          }
          out[(y * ow + x) * filters + k] = f(sum);
        }
      }
    }
    return [out, [oh, ow, filters]];
  }

  function maxPool(input, shape, size) {
    const [h, w, c] = shape;
    const oh = Math.floor(h / size);
    const ow = Math.floor(w / size);
    const out = new Float32Array(oh * ow * c);
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) {
        for (let k = 0; k < c; k++) {
          let best = -Infinity;
          for (let dy = 0; dy < size; dy++) {
            for (let dx = 0; dx < size; dx++) {
              best = Math.max(best, input[((y * size + dy) * w + x * size + dx) * c + k]);
            }
          }
          out[(y * ow + x) * c + k] = best;
        }
      }
    }
    return [out, [oh, ow, c]];
  }

  function dense(input, layer) {
    const [nIn, nOut] = layer.shape;
    const out = new Float32Array(nOut);
    for (let j = 0; j < nOut; j++) {
      let sum = layer.bias[j];
      for (let i = 0; i < nIn; i++) sum += input[i] * layer.kernel[i * nOut + j];
      out[j] = sum;
    }
    if (layer.activation === "softmax") {
      const top = Math.max(...out);
      let total = 0;
      for (let j = 0; j < nOut; j++) total += (out[j] = Math.exp(out[j] - top));
      for (let j = 0; j < nOut; j++) out[j] /= total;
    } else {
      for (let j = 0; j < nOut; j++) out[j] = activate[layer.activation](out[j]);
    }
    return out;
  }

  // image: 28×28 Float32Array in [0, 1]. Returns the probabilities and every conv output.
  function forward(image) {
    let x = image;
    let shape = [R.size, R.size, 1];
    const maps = [];
    for (const layer of layers) {
      if (layer.kind === "conv") {
        [x, shape] = conv2d(x, shape, layer);
        maps.push({ values: x, shape });
      } else if (layer.kind === "pool") {
        [x, shape] = maxPool(x, shape, layer.size);
      } else if (layer.kind === "flatten") {
        shape = [x.length];
      } else if (layer.kind === "dense") {
        x = dense(x, layer);
        shape = [x.length];
      }
    }
    return { probabilities: Array.from(x), maps };
  }

  window.DigitPad = { prepare, forward, DigitError };

  // ---------------------------------------------------------------- the page
  const section = document.getElementById("pad");
  const canvas = document.getElementById("pad-canvas");
  const pen = canvas.getContext("2d");
  const inputView = document.getElementById("pad-input");
  const digitOut = document.getElementById("pad-digit");
  const confidenceOut = document.getElementById("pad-confidence");
  const status = document.getElementById("pad-status");
  const bars = [];
  const mapViews = [[], []];

  function blankCanvas() {
    pen.fillStyle = "#fff";
    pen.fillRect(0, 0, canvas.width, canvas.height);
  }

  function buildViews() {
    const barBox = document.getElementById("pad-bars");
    for (let d = 0; d < 10; d++) {
      const row = document.createElement("div");
      row.className = "pad-bar";
      row.innerHTML = `<span>${d}</span><i></i><em></em>`;
      barBox.appendChild(row);
      bars.push(row);
    }
    const convs = layers.filter((layer) => layer.kind === "conv").slice(0, 2);
    convs.forEach((layer, i) => {
      const box = document.getElementById(`pad-maps${i + 1}`);
      for (let k = 0; k < layer.shape[3]; k++) {
        const view = document.createElement("canvas");
        view.title = `${layer.name} #${k}`;
        box.appendChild(view);
        mapViews[i].push(view);
      }
    });
  }

  // A greyscale picture of channel k of a (h, w, c) tensor, scaled to its own maximum.
  function paint(view, values, shape, k) {
    const [h, w, c] = shape;
    view.width = w;
    view.height = h;
    let peak = 1e-6;
    for (let i = k; i < values.length; i += c) peak = Math.max(peak, values[i]);
    const ctx = view.getContext("2d");
    const img = ctx.createImageData(w, h);
    for (let i = 0; i < w * h; i++) {
      const v = Math.round((255 * values[i * c + k]) / peak);
      img.data.set([v, v, v, 255], i * 4);
    }
    ctx.putImageData(img, 0, 0);
  }

  function show(result, input) {
    const p = result.probabilities;
    const best = p.indexOf(Math.max(...p));
    digitOut.textContent = String(best);
    confidenceOut.textContent = `(${(100 * p[best]).toFixed(1)} %)`;
    bars.forEach((row, d) => {
      row.querySelector("i").style.width = `${(100 * p[d]).toFixed(1)}%`;
      row.querySelector("em").textContent = `${(100 * p[d]).toFixed(1)}`;
      row.classList.toggle("best", d === best);
    });
    paint(inputView, input, [R.size, R.size, 1], 0);
    result.maps.slice(0, 2).forEach((m, i) =>
      mapViews[i].forEach((view, k) => paint(view, m.values, m.shape, k))
    );
    status.textContent = "";
    section.dataset.predicted = String(best);
  }

  function update() {
    const { data: rgba } = pen.getImageData(0, 0, canvas.width, canvas.height);
    const grey = new Float64Array(canvas.width * canvas.height);
    for (let i = 0; i < grey.length; i++) {
      // Pillow's "L": 0.299 R + 0.587 G + 0.114 B
      grey[i] = (0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2]) / 255;
    }
    try {
      const input = prepare(grey, canvas.width, canvas.height);
      show(forward(input), input);
    } catch (err) {
      if (!(err instanceof DigitError)) throw err;
      status.textContent = data.text.empty;
    }
  }

  let drawing = false;
  let last = null;
  let pending = false;
  function point(event) {
    const box = canvas.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * canvas.width) / box.width,
      ((event.clientY - box.top) * canvas.height) / box.height,
    ];
  }
  function stroke(to) {
    pen.lineWidth = 20;
    pen.lineCap = "round";
    pen.lineJoin = "round";
    pen.strokeStyle = "#000";
    pen.beginPath();
    pen.moveTo(...(last || to));
    pen.lineTo(...to);
    pen.stroke();
    last = to;
  }
  function scheduleUpdate() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      update();
    });
  }
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    last = null;
    canvas.setPointerCapture?.(event.pointerId);
    stroke(point(event));
    scheduleUpdate();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    stroke(point(event));
    scheduleUpdate();
  });
  for (const type of ["pointerup", "pointercancel"]) {
    canvas.addEventListener(type, () => {
      if (!drawing) return;
      drawing = false;
      update();
    });
  }
  document.getElementById("pad-clear").addEventListener("click", () => {
    blankCanvas();
    section.removeAttribute("data-predicted");
    digitOut.textContent = "–";
    confidenceOut.textContent = "";
    status.textContent = data.text.empty;
  });

  blankCanvas();
  buildViews();
  section.hidden = false;
  // A table-of-contents entry after the section that precedes the pad.
  const before = section.previousElementSibling;
  const link = before && document.querySelector(`nav a[href="#${before.id}"]`);
  if (link) {
    const item = document.createElement("li");
    item.innerHTML = `<a href="#pad">${data.text.title}</a>`;
    link.parentElement.after(item);
  }
})();
