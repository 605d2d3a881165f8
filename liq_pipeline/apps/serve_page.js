// The liq serve page: controls → URL → /api/view (heatmap of the lookback) and /api/instant (map of one
// instant). Everything shown comes from the server; this script only lays it out.
"use strict";
const LONG = "#35c3f2", SHORT = "#f2545b", MARK = "#ffffff", CANDLE_UP = "#8fd18f", CANDLE_DOWN = "#d18f8f";
// matplotlib's inferno (plotly.js has no built-in inferno): the colour map of the PNG pictures.
const INFERNO = [[0, "#000004"], [0.1, "#160b39"], [0.2, "#420a68"], [0.3, "#6a176e"], [0.4, "#932667"],
  [0.5, "#bc3754"], [0.6, "#dd513a"], [0.7, "#f37819"], [0.8, "#fca50a"], [0.9, "#f6d746"], [1, "#fcffa4"]];
const state = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
window.__liq = { view: null, instant: null, now: null, loads: 0 };
let catalog = null;

function usd(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return "$" + (v / 1e9).toFixed(2) + "B";
  if (a >= 1e6) return "$" + (v / 1e6).toFixed(2) + "M";
  if (a >= 1e3) return "$" + (v / 1e3).toFixed(1) + "k";
  return "$" + v.toFixed(0);
}
function price(v) { return v >= 1000 ? v.toLocaleString("en-US", {maximumFractionDigits: 0}) : v.toFixed(2); }
function utc(iso) { return iso.replace("T", " ").slice(0, 16) + " UTC"; }

function decode(b64, rows, cols) {
  const bin = atob(b64), bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const f = new Float32Array(bytes.buffer), out = [];
  for (let r = 0; r < rows; r++) out.push(f.subarray(r * cols, (r + 1) * cols));
  return out;
}

function setUrl() {
  for (const [k, v] of [...state.entries()]) if (v === "") state.delete(k);
  history.replaceState(null, "", "?" + state.toString());
}

async function getJson(path) {
  const r = await fetch(path + "?" + state.toString());
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function fillControls() {
  const sym = $("symbol"), variant = $("variant");
  sym.innerHTML = catalog.symbols.map((s) => `<option>${s}</option>`).join("");
  sym.value = state.get("symbol") || catalog.symbols[0];
  const variants = catalog.entries.filter((e) => e.symbol === sym.value).map((e) => e.variant);
  variant.innerHTML = variants.map((v) => `<option>${v}</option>`).join("");
  variant.value = variants.includes(state.get("variant")) ? state.get("variant")
    : (variants.includes(catalog.default_variant) ? catalog.default_variant : variants[0]);
  state.set("symbol", sym.value); state.set("variant", variant.value);
  const lb = state.get("lookback") || "1d";
  $("lookbacks").innerHTML = catalog.lookbacks.map((l) =>
    `<button data-lookback="${l}" class="${l === lb ? "on" : ""}">${l}</button>`).join(" ");
  $("range-inputs").hidden = lb !== "range";
  const chosen = (state.get("lev") || "").split(",").filter((x) => x).map(Number);
  const filterable = catalog.leverage_variants.includes(variant.value);
  $("lev").innerHTML = "leverage: " + catalog.leverages.map((l) =>
    `<label><input type="checkbox" value="${l}" ${!chosen.length || chosen.includes(l) ? "checked" : ""}
      ${filterable ? "" : "disabled"}>${l}x</label>`).join("");
  // Why the filter is off: only a learned-mix variant's book holds positions per leverage bucket.
  $("lev-note").textContent = filterable ? "" :
    `leverage filter off for ${variant.value}: it spreads every position over the seed's fixed leverage mix, ` +
    `so its book has no leverage buckets to filter; choose ${catalog.leverage_variants.join(" or ")} to use it`;
}

function colorLimits(z) {
  const v = [];
  for (const row of z) for (const x of row) if (x > 0) v.push(Math.log10(x));
  if (!v.length) return [0, 1];
  v.sort((a, b) => a - b);
  const lo = v[Math.floor(0.5 * (v.length - 1))], hi = v[Math.floor(0.995 * (v.length - 1))];
  return hi > lo ? [lo, hi] : [hi - 1, hi];
}

function usdTicks(lo, hi) {
  // 1-2-5 dollar ticks; a narrow range (less than three of them) gets 1-1.5-2-3-5-7 instead.
  for (const steps of [[1, 2, 5], [1, 1.5, 2, 3, 5, 7]]) {
    const vals = [], text = [];
    for (let k = Math.floor(lo) - 1; k <= Math.ceil(hi) + 1; k++)
      for (const m of steps) {
        const t = k + Math.log10(m);
        if (t >= lo && t <= hi) { vals.push(t); text.push(usd(m * 10 ** k)); }
      }
    if (vals.length >= 3 || steps.length > 3) return {tickvals: vals, ticktext: text};
  }
}

function drawView(v) {
  const [rows, cols] = v.shape;
  const total = decode(v.usd, rows, cols).map((row) => Array.from(row)), logz = [];
  for (const row of total) logz.push(row.map((x) => (x > 0 ? Math.log10(x) : null)));
  const [zmin, zmax] = colorLimits(total);
  const traces = [{
    type: "heatmap", x: v.times, y: v.price_mid, z: logz, customdata: total, zmin, zmax, colorscale: INFERNO,
    name: "liquidation levels", xaxis: "x", yaxis: "y", hoverongaps: false,
    hovertemplate: "%{x|%Y-%m-%d %H:%M} UTC<br>price %{y:,.2f}<br>liquidations %{customdata:$,.0f}<extra></extra>",
    colorbar: {title: {text: `liquidation notional per price bin (${v.bin_label}), USD, log colour`, side: "top"},
               orientation: "h", x: 0.36, xanchor: "center", y: -0.13, yanchor: "top", len: 0.7, thickness: 12,
               ...usdTicks(zmin, zmax)},
  }];
  if (v.candles.t.length) traces.push({
    type: "candlestick", x: v.candles.t, open: v.candles.open, high: v.candles.high, low: v.candles.low,
    close: v.candles.close, name: `last price (${v.candle_minutes} min candles)`, xaxis: "x", yaxis: "y",
    increasing: {line: {color: CANDLE_UP, width: 1}}, decreasing: {line: {color: CANDLE_DOWN, width: 1}},
    whiskerwidth: 0.2,
  });
  if (v.mark.t.length) traces.push({
    type: "scatter", mode: "lines", x: v.mark.t, y: v.mark.close, name: "mark price", xaxis: "x", yaxis: "y",
    line: {color: MARK, width: 1}, hovertemplate: "mark %{y:,.2f}<extra></extra>",
  });
  if (v.realized.t.length) {
    const maxUsd = Math.max(...v.realized.usd);
    traces.push({
      type: "scatter", mode: "markers", x: v.realized.t, y: v.realized.price, customdata: v.realized.usd,
      name: `realized liquidations (${v.realized.count}, ${usd(v.realized.total_usd)})`, xaxis: "x", yaxis: "y",
      marker: {size: v.realized.usd.map((u) => 3 + 12 * Math.sqrt(u / maxUsd)), symbol: "circle-open",
               color: v.realized.side.map((s) => (s > 0 ? LONG : SHORT))},
      hovertemplate: "realized %{customdata:$,.0f} at %{y:,.2f}<extra></extra>",
    });
  }
  const layout = {
    template: "plotly_dark", paper_bgcolor: "#0b0b12", plot_bgcolor: "#0b0b12", uirevision: null,
    margin: {l: 80, r: 20, t: 40, b: 110}, showlegend: true, hovermode: "closest",
    legend: {orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: {size: 11}},
    title: {text: `${v.symbol} liquidation heatmap (${v.variant}), ${utc(v.start)} – ${utc(v.end)}`,
            font: {size: 14}, x: 0.01, y: 0.995},
    xaxis: {domain: [0, 0.72], type: "date", range: [v.start, v.end], title: {text: "time (UTC)"},
            rangeslider: {visible: false}},
    yaxis: {title: {text: "liquidation price (USDT)"}, tickformat: ",.0f",
            range: [v.price_low[0], v.price_low[v.price_low.length - 1]]},
    xaxis2: {domain: [0.75, 1], anchor: "y", title: {text: "USD per bin at the instant"}, rangemode: "tozero"},
    xaxis3: {domain: [0.75, 1], anchor: "y", overlaying: "x2", side: "top", showgrid: false,
             title: {text: "cumulative from mark (USD)"}, rangemode: "tozero"},
    shapes: [],
  };
  window.__liq.heatmapTraces = traces.length;
  Plotly.react("heatmap", traces, layout, {responsive: true, displaylogo: false});
  $("heatmap").on && !$("heatmap").__clickBound && ($("heatmap").__clickBound = true) &&
    $("heatmap").on("plotly_click", (e) => {
      const p = e.points && e.points.find((pt) => pt.xaxis && pt.xaxis._id === "x");
      if (!p) return;
      const t = new Date(String(p.x).replace(" ", "T") + "Z").getTime(), times = window.__liq.view.times.map((s) => new Date(s + "Z").getTime());
      let best = 0;
      for (let i = 0; i < times.length; i++) if (Math.abs(times[i] - t) < Math.abs(times[best] - t)) best = i;
      $("instant").value = best; selectInstant();
    });
  const live = v.live ? `<span class="live">LIVE</span> ${v.latest_label}` : `<span class="stale">${v.latest_label}</span>`;
  $("status").innerHTML = `${live} · ${v.times.length} snapshots${v.stride > 1 ? ` (one in ${v.stride})` : ""} · ` +
    `realized liquidations in view: ${v.realized.count ? `${v.realized.count}, ${usd(v.realized.total_usd)}` : "none recorded or imported"}`;
  $("notes").innerHTML = v.notes.map((n) => `<div>${n}</div>`).join("");
  const slider = $("instant");
  slider.max = v.times.length - 1;
  const at = state.get("at"), idx = at ? v.times.findIndex((t) => t >= at.slice(0, 19)) : -1;
  slider.value = idx >= 0 ? idx : v.times.length - 1;
}

function drawInstant(m) {
  const traces = [];
  for (const [side, color] of [["long", LONG], ["short", SHORT]]) {
    const s = m.sides[side];
    traces.push({type: "scatter", mode: "lines", x: s.usd, y: s.price, xaxis: "x2", yaxis: "y", fill: "tozerox",
                 line: {color, width: 1, shape: "vh"}, name: `${side} levels at the instant`, showlegend: false,
                 hovertemplate: `${side} %{x:$,.0f} at %{y:,.2f}<extra></extra>`});
    traces.push({type: "scatter", mode: "lines", x: [0, ...s.cumulative_usd], y: [m.mark, ...s.price], xaxis: "x3",
                 yaxis: "y", line: {color, width: 2}, name: `${side} cumulative`, showlegend: false,
                 hovertemplate: `${side}s liquidated by a move to %{y:,.2f}: %{x:$,.0f}<extra></extra>`});
  }
  const now = window.__liq.now;
  if (now && now.available) {  // the live layer's map, beside the instant's: dotted, labelled with its age
    for (const [side, color] of [["long", LONG], ["short", SHORT]]) {
      traces.push({type: "scatter", mode: "lines", x: now.sides[side].usd, y: now.sides[side].price, xaxis: "x2",
                   yaxis: "y", line: {color, width: 1, dash: "dot", shape: "vh"}, name: `live ${side} (${now.label})`,
                   showlegend: false, hovertemplate: `live ${side} %{x:$,.0f} at %{y:,.2f}<extra></extra>`});
    }
  }
  const gd = $("heatmap"), base = window.__liq.heatmapTraces;
  const extra = gd.data.length - base;
  if (extra > 0) Plotly.deleteTraces(gd, [...Array(extra).keys()].map((i) => base + i));
  Plotly.addTraces(gd, traces);
  const shapes = [{type: "line", xref: "x", yref: "paper", x0: m.time, x1: m.time, y0: 0, y1: 1,
                   line: {color: "#ffffff", width: 1, dash: "dot"}}];
  if (m.mark !== null) shapes.push({type: "line", xref: "x2 domain", yref: "y", x0: 0, x1: 1, y0: m.mark, y1: m.mark,
                                   line: {color: MARK, width: 1, dash: "dash"}});
  const annotations = [];
  for (const z of m.zones) {
    const color = z.side === "long" ? LONG : SHORT;
    shapes.push({type: "rect", xref: "x2 domain", yref: "y", x0: 0, x1: 1, y0: z.low, y1: z.high,
                 fillcolor: color, opacity: z.kind === "band" ? 0.25 : 0.1, line: {width: 0}});
    shapes.push({type: "rect", xref: "x domain", yref: "y", x0: 0.97, x1: 1, y0: z.low, y1: z.high,
                 fillcolor: color, opacity: 0.6, line: {width: 0}});
    annotations.push({xref: "x2 domain", yref: "y", x: 1, xanchor: "right", y: (z.low + z.high) / 2, showarrow: false,
                      text: `${z.side[0].toUpperCase()}${z.rank} ${usd(z.usd)}`, font: {size: 10, color}});
  }
  Plotly.relayout(gd, {shapes, annotations});
  $("instant-label").textContent = utc(m.time);
  $("totals").innerHTML = `at ${utc(m.time)}${m.mark !== null ? `, mark ${price(m.mark)}` : ""}: ` +
    `<span class="long">long liquidations beyond the mark ${usd(m.sides.long.total_usd)}</span> · ` +
    `<span class="short">short ${usd(m.sides.short.total_usd)}</span>`;
  $("zones").innerHTML = "<tr><th>zone</th><th>kind</th><th>range</th><th>peak</th><th>to mark</th><th>notional</th></tr>" +
    m.zones.map((z) => `<tr class="${z.side}"><td>${z.side} ${z.rank}</td><td>${z.kind}</td>` +
      `<td>${price(z.low)} – ${price(z.high)}</td><td>${price(z.peak)}</td><td>${z.distance_pct.toFixed(2)} %</td>` +
      `<td>${usd(z.usd)}</td></tr>`).join("");
}

async function selectInstant() {
  const v = window.__liq.view;
  if (!v) return;
  state.set("at", v.times[Number($("instant").value)]);
  setUrl();
  try {
    const m = await getJson("/api/instant");
    window.__liq.instant = m;
    drawInstant(m);
  } catch (e) { $("error").textContent = e.message; }
}

async function loadNow() {
  try {
    const n = await getJson("/api/now");
    window.__liq.now = n;
    const el = $("live");
    el.className = n.enabled && n.available ? "live" : "stale";
    el.textContent = n.enabled ? n.label : "";
  } catch (e) { window.__liq.now = null; $("live").textContent = "live map: " + e.message; }
}

async function load() {
  $("error").textContent = "";
  setUrl();
  try {
    const [v] = await Promise.all([getJson("/api/view"), loadNow()]);
    window.__liq.view = v;
    drawView(v);
    await selectInstant();
  } catch (e) {
    $("error").textContent = e.message;
  }
  window.__liq.loads += 1;
}

function shift(sign) {
  const lb = state.get("lookback") || "1d", v = window.__liq.view;
  if (!v) return;
  if (lb === "range") {
    const days = (new Date(v.end) - new Date(v.start)) / 86400e3, step = sign * days * 86400e3;
    const d = (s) => new Date(new Date(s + "T00:00:00Z").getTime() + step).toISOString().slice(0, 10);
    state.set("from", d(state.get("from"))); state.set("to", d(state.get("to")));
  } else {
    const span = new Date(v.end + "Z") - new Date(v.start + "Z");
    state.set("end", new Date(new Date(v.end + "Z").getTime() + sign * span).toISOString().slice(0, 16));
  }
  state.delete("at");
  load();
}

async function main() {
  try {
    const r = await fetch("/api/catalog");
    catalog = await r.json();
  } catch (e) { $("error").textContent = "cannot reach the server: " + e.message; return; }
  if (!catalog.entries.length) { $("error").textContent = "no heatmap materialized yet: run `make demo`"; return; }
  fillControls();
  $("symbol").onchange = () => { state.set("symbol", $("symbol").value); state.delete("variant"); state.delete("at");
                                 fillControls(); load(); };
  $("variant").onchange = () => { state.set("variant", $("variant").value); if (!catalog.leverage_variants.includes($("variant").value)) state.delete("lev");
                                  fillControls(); load(); };
  $("lookbacks").onclick = (e) => {
    const lb = e.target.dataset && e.target.dataset.lookback;
    if (!lb) return;
    state.set("lookback", lb); state.delete("at");
    if (lb === "range") {
      const v = window.__liq.view, last = v ? v.end.slice(0, 10) : "";
      $("from").value = state.get("from") || last; $("to").value = state.get("to") || last;
    } else { state.delete("from"); state.delete("to"); }
    fillControls();
    if (lb !== "range") load();
  };
  $("apply-range").onclick = () => { state.set("from", $("from").value); state.set("to", $("to").value); load(); };
  $("back").onclick = () => shift(-1);
  $("fwd").onclick = () => shift(1);
  $("latest").onclick = () => { state.delete("end"); state.delete("at"); load(); };
  $("lev").onchange = (e) => {
    const boxes = [...$("lev").querySelectorAll("input")], on = boxes.filter((b) => b.checked).map((b) => b.value);
    if (!on.length) { e.target.checked = true; return; }  // at least one bucket: an empty book shows nothing
    if (on.length === boxes.length) state.delete("lev"); else state.set("lev", on.join(","));
    load();
  };
  $("instant").oninput = () => { $("instant-label").textContent = utc(window.__liq.view.times[Number($("instant").value)]); };
  $("instant").onchange = selectInstant;
  if (state.get("lookback") === "range") { $("from").value = state.get("from") || ""; $("to").value = state.get("to") || ""; }
  load();
}
main();
