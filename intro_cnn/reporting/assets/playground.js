// The report's convolution playground: pick a kernel and watch it convolve the demo image.
//
// One function does the work, convolve(): the rule of scipy.ndimage.convolve, written out.
// Every output pixel is a sum of weight × pixel over the kernel, centred on that pixel, with
// the kernel flipped (that is what makes it a convolution rather than a correlation). Near a
// border the kernel reads the image mirrored at its edge (scipy's mode "reflect":
// d c b a | a b c d | d c b a). The rest builds kernels and paints numbers as pixels.
// Images are Float64Arrays, one channel, row by row: index = y * width + x.
// window.ConvPlayground exposes kernel(), convolve() and apply() (the report's tests call them).
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("playground-data").textContent);
  const T = data.text;
  const W = data.image.width;
  const H = data.image.height;

  // ---------------------------------------------------------------- convolution
  // Position i of a row of n pixels, mirrored back into 0 … n-1 (mode "reflect").
  function reflect(i, n) {
    const period = 2 * n;
    const k = ((i % period) + period) % period;
    return k < n ? k : period - 1 - k;
  }

  // out[y][x] = Σ over the kernel of k[j][i] · image[y + cy - j][x + cx - i],
  // with the kernel's centre (cx, cy) = (⌊kw / 2⌋, ⌊kh / 2⌋) as scipy puts it.
  function convolve(image, w, h, k, kw, kh) {
    const cx = kw >> 1;
    const cy = kh >> 1;
    // Which column each kernel column reads, for every x (mirrored at the borders).
    const cols = new Int32Array(w * kw);
    for (let x = 0; x < w; x++) {
      for (let i = 0; i < kw; i++) cols[x * kw + i] = reflect(x + cx - i, w);
    }
    const out = new Float64Array(w * h);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let sum = 0;
        for (let j = 0; j < kh; j++) {
          const row = reflect(y + cy - j, h) * w;
          for (let i = 0; i < kw; i++) sum += k[j * kw + i] * image[row + cols[x * kw + i]];
        }
        out[y * w + x] = sum;
      }
    }
    return out;
  }

  // ---------------------------------------------------------------- kernels
  // exp(-x² / 2σ²) at the size's taps, summing to 1 (an average: a flat image stays flat).
  function gaussian1d(size, sigma) {
    const r = size >> 1;
    const g = [];
    for (let x = -r; x <= r; x++) g.push(Math.exp(-(x * x) / (2 * sigma * sigma)));
    const total = g.reduce((a, b) => a + b, 0);
    return Float64Array.from(g, (v) => v / total);
  }

  // The 2-D Gaussian: the outer product g[j] · g[i] (it sums to 1 too).
  function outer(g) {
    const n = g.length;
    const k = new Float64Array(n * n);
    for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) k[j * n + i] = g[j] * g[i];
    return k;
  }

  function transpose(k, n) {
    const t = new Float64Array(n * n);
    for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) t[i * n + j] = k[j * n + i];
    return t;
  }

  // A kernel from the controls: { name, size, sigma, cells } → { values, size }.
  function kernel(spec) {
    const n = spec.size;
    switch (spec.name) {
      case "gaussian":
        return { values: outer(gaussian1d(n, spec.sigma)), size: n };
      case "sobel_x":
      case "sobel_y": {
        // The notebook's edge filter: the Gaussian convolved with [-1, 1], i.e. its
        // horizontal difference (negative weights on one side, positive on the other).
        const dx = convolve(outer(gaussian1d(n, spec.sigma)), n, n, [-1, 1], 2, 1);
        return { values: spec.name === "sobel_x" ? dx : transpose(dx, n), size: n };
      }
      case "sharpen":
        return { values: Float64Array.of(0, -1, 0, -1, 5, -1, 0, -1, 0), size: 3 };
      case "box":
        return { values: new Float64Array(n * n).fill(1 / (n * n)), size: n };
      case "custom":
        return { values: Float64Array.from(spec.cells, Number), size: 3 };
      default:
        throw new Error(`unknown kernel ${spec.name}`);
    }
  }

  // ---------------------------------------------------------------- the image
  const bytes = Uint8Array.from(atob(data.image.rgb), (ch) => ch.charCodeAt(0));
  const channels = [0, 1, 2].map((c) => Float64Array.from({ length: W * H }, (_, p) => bytes[3 * p + c]));
  // Grey as the notebook makes it: the mean of the three channels.
  const grey = Float64Array.from({ length: W * H }, (_, p) => (channels[0][p] + channels[1][p] + channels[2][p]) / 3);
  const walk = Float64Array.from(data.walk);

  // The kernel over the colour channels, one at a time (channels never mix), over the grey
  // image, and the 1-D Gaussian of the same size and σ over the random walk.
  function apply(spec) {
    const k = kernel(spec);
    const g = gaussian1d(spec.size, spec.sigma);
    return {
      kernel: k,
      colour: channels.map((ch) => convolve(ch, W, H, k.values, k.size, k.size)),
      grey: convolve(grey, W, H, k.values, k.size, k.size),
      smoothed: convolve(walk, walk.length, 1, g, g.length, 1),
    };
  }

  // ---------------------------------------------------------------- painting
  // Colour of a value between 0 and 1 on one of matplotlib's colormaps (linear between stops).
  function colourOf(map, t) {
    const stops = data.colormaps[map];
    const x = Math.min(Math.max(t, 0), 1) * (stops.length - 1);
    const i = Math.min(Math.floor(x), stops.length - 2);
    const f = x - i;
    return stops[i].map((v, c) => Math.round(v + f * (stops[i + 1][c] - v)));
  }

  const signed = (k) => Math.abs(k.values.reduce((a, b) => a + b, 0)) < 1e-9;
  const largest = (arrays) => Math.max(1e-12, ...arrays.map((a) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0)));

  // Pixels: 0-255 clipped as in the blurred figure, or, for a kernel that sums to 0 (an edge
  // filter), mid-grey at 0 and both signs visible, as in the edge figure.
  function paintImage(canvas, layers, zeroSum) {
    const m = zeroSum ? largest(layers) : 0;
    const show = zeroSum ? (v) => 128 + (127 * v) / m : (v) => v;
    const pen = canvas.getContext("2d");
    const img = pen.createImageData(W, H);
    for (let p = 0; p < W * H; p++) {
      for (let c = 0; c < 3; c++) img.data[4 * p + c] = show(layers[layers.length === 1 ? 0 : c][p]);
      img.data[4 * p + 3] = 255;
    }
    pen.putImageData(img, 0, 0);
  }

  // The kernel as the notebook's matshow: viridis from 0 for a kernel with no negative
  // weight, red-blue centred on 0 otherwise; the weights written in when they fit.
  function paintKernel(canvas, k) {
    const pen = canvas.getContext("2d");
    const n = k.size;
    const cell = canvas.width / n;
    const negative = k.values.some((v) => v < 0);
    const m = largest([k.values]);
    pen.clearRect(0, 0, canvas.width, canvas.height);
    pen.font = `${Math.max(9, Math.floor(cell / 3.2))}px sans-serif`;
    pen.textAlign = "center";
    pen.textBaseline = "middle";
    for (let j = 0; j < n; j++) {
      for (let i = 0; i < n; i++) {
        const v = k.values[j * n + i];
        const [r, g, b] = negative ? colourOf("RdBu_r", 0.5 + v / (2 * m)) : colourOf("viridis", v / m);
        pen.fillStyle = `rgb(${r},${g},${b})`;
        pen.fillRect(i * cell, j * cell, cell + 0.5, cell + 0.5);
        if (n <= 7) {
          pen.fillStyle = 0.299 * r + 0.587 * g + 0.114 * b > 140 ? "#000" : "#fff";
          pen.fillText(Number(v.toFixed(3)).toString(), (i + 0.5) * cell, (j + 0.5) * cell);
        }
      }
    }
  }

  // The walk in grey and its smoothed version in blue, as in the random-walk figure.
  function paintWalk(canvas, smoothed) {
    const pen = canvas.getContext("2d");
    const pad = 24;
    const lo = Math.min(...walk, ...smoothed);
    const hi = Math.max(...walk, ...smoothed);
    const px = (i) => pad + (i * (canvas.width - 2 * pad)) / (walk.length - 1);
    const py = (v) => canvas.height - pad - ((v - lo) * (canvas.height - 2 * pad)) / (hi - lo || 1);
    pen.clearRect(0, 0, canvas.width, canvas.height);
    pen.strokeStyle = "#d0d7de";
    pen.strokeRect(pad, pad, canvas.width - 2 * pad, canvas.height - 2 * pad);
    const line = (values, colour, width, y) => {
      pen.strokeStyle = colour;
      pen.lineWidth = width;
      pen.beginPath();
      values.forEach((v, i) => (i ? pen.lineTo(px(i), py(v)) : pen.moveTo(px(i), py(v))));
      pen.stroke();
      pen.fillStyle = colour;
      pen.font = "13px sans-serif";
      pen.fillText(y.text, pad + 8, y.at);
    };
    line(walk, "#8c8c8c", 1, { text: T.random_walk, at: pad + 16 });
    line(smoothed, "#1f77b4", 2, { text: T.smoothed, at: pad + 32 });
  }

  // ---------------------------------------------------------------- controls
  const $ = (id) => document.getElementById(id);
  const section = $("playground");
  const menu = $("pg-kernel");
  const size = $("pg-size");
  const sigma = $("pg-sigma");
  const cells = Array.from($("pg-custom").querySelectorAll("input"));
  size.value = String(data.gaussian.taps);
  sigma.value = String(data.gaussian.sigma);

  function spec() {
    return { name: menu.value, size: Number(size.value), sigma: Number(sigma.value), cells: cells.map((c) => c.value) };
  }

  function update() {
    const s = spec();
    const out = apply(s);
    const zeroSum = signed(out.kernel);
    $("pg-size-out").textContent = `${out.kernel.size}×${out.kernel.size}`;
    $("pg-sigma-out").textContent = s.sigma.toFixed(2);
    size.disabled = ["sharpen", "custom"].includes(s.name);
    sigma.disabled = !["gaussian", "sobel_x", "sobel_y"].includes(s.name);
    $("pg-custom").hidden = s.name !== "custom";
    $("pg-sum").textContent = `(${T.sum} ${Number(out.kernel.values.reduce((a, b) => a + b, 0).toFixed(6))})`;
    $("pg-display").textContent = zeroSum ? T.display_signed : T.display_clipped;
    paintKernel($("pg-matrix"), out.kernel);
    paintImage($("pg-colour"), out.colour, zeroSum);
    paintImage($("pg-grey"), [out.grey], zeroSum);
    paintWalk($("pg-walk"), out.smoothed);
    section.dataset.kernel = s.name;
  }

  // One update per frame however fast a slider moves.
  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      update();
    });
  }
  for (const control of [menu, size, sigma, ...cells]) control.addEventListener("input", schedule);

  paintImage($("pg-original"), channels, false);
  update();
  section.hidden = false;
  window.ConvPlayground = { kernel, convolve, apply, update, image: { width: W, height: H, channels, grey }, walk };
})();
