// Draws a run's job graph as SVG: jobs in layers by their longest path from a root, coloured by state.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const NODE_W = 150, NODE_H = 34, GAP_X = 60, GAP_Y = 22, PAD = 16;
const STATE_COLOURS = {
  succeeded: "#2e9e5b", running: "#2f6fdb", queued: "#8a63d2", limited: "#b05f00", scheduled: "#b08900", retrying: "#e07a16",
  dead: "#d03b3b", skipped: "#9a9aa0", cancelled: "#5b5b60", waiting: "#c9c9ce", fanout: "#1f8f9a",
  awaiting: "#c2185b",
};

function layers(jobs, edges) {
  const depth = {};
  const incoming = {};
  jobs.forEach((j) => { incoming[j.name] = []; });
  edges.forEach((e) => { if (incoming[e.target]) incoming[e.target].push(e.source); });
  const visit = (name, seen) => {
    if (depth[name] !== undefined) return depth[name];
    if (seen.has(name)) return 0;  // a cycle cannot be deployed; stay safe anyway
    seen.add(name);
    const ups = incoming[name] || [];
    depth[name] = ups.length ? 1 + Math.max(...ups.map((u) => visit(u, seen))) : 0;
    return depth[name];
  };
  jobs.forEach((j) => visit(j.name, new Set()));
  const columns = [];
  jobs.forEach((j) => { (columns[depth[j.name]] = columns[depth[j.name]] || []).push(j); });
  return columns;
}

function el(name, attrs, text) {
  const node = document.createElementNS(SVG_NS, name);
  Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// Returns an <svg>; onSelect(jobName) is called when a job is clicked.
function drawGraph(run, selected, onSelect) {
  const columns = layers(run.jobs, run.edges);
  const tallest = Math.max(1, ...columns.map((c) => c.length));
  const width = PAD * 2 + columns.length * NODE_W + Math.max(0, columns.length - 1) * GAP_X;
  const height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y;
  const svg = el("svg", { class: "graph", viewBox: `0 0 ${width} ${height}`, "data-run": run.id });
  svg.style.maxWidth = `${Math.max(width, 320)}px`;
  const place = {};
  columns.forEach((column, x) => {
    const offset = (height - (column.length * NODE_H + (column.length - 1) * GAP_Y)) / 2;
    column.forEach((job, y) => {
      place[job.name] = { x: PAD + x * (NODE_W + GAP_X), y: offset + y * (NODE_H + GAP_Y) };
    });
  });
  run.edges.forEach((e) => {
    const a = place[e.source], b = place[e.target];
    if (!a || !b) return;
    const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2, mid = (x1 + x2) / 2;
    svg.appendChild(el("path", {
      class: `edge ${e.kind}`, d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
      "data-edge": `${e.source}->${e.target}`,
    }));
  });
  run.jobs.forEach((job) => {
    const p = place[job.name];
    const g = el("g", {
      class: `node ${job.state}${job.name === selected ? " selected" : ""}`,
      transform: `translate(${p.x},${p.y})`, "data-job": job.name, "data-state": job.state,
    });
    g.appendChild(el("rect", { width: NODE_W, height: NODE_H, rx: 6, fill: STATE_COLOURS[job.state] || "#777" }));
    const label = job.name.length > 18 ? `${job.name.slice(0, 17)}…` : job.name;
    g.appendChild(el("text", { x: 10, y: 15 }, label));
    const tries = job.attempt > 1 ? ` ×${job.attempt}` : "";
    const fan = job.children ? ` ${job.children - (job.children_left || 0)}/${job.children}` : "";
    g.appendChild(el("text", { x: 10, y: 28, "font-size": 10 }, `${job.state}${tries}${fan}`));
    g.appendChild(el("title", {}, `${job.name}: ${job.state} (${job.task})`));
    g.addEventListener("click", () => onSelect(job.name));
    svg.appendChild(g);
  });
  return svg;
}

window.tqGraph = { drawGraph, layers, STATE_COLOURS };
