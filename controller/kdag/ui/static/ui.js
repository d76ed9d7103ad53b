// kdag ui: live updates over one EventSource per page. Every value from the server is set as text
// (textContent, className from a fixed set), never as HTML; sections are refreshed by fetching this
// page again and swapping in the server-rendered (escaped) elements of the same id.
"use strict";
(function () {
  const body = document.body;
  const page = body.dataset.page;
  const ns = body.dataset.ns || "";
  const PHASES = ["Succeeded", "Failed", "UpstreamFailed", "Skipped", "Running", "Retrying",
                  "UpForReschedule", "Pending"];
  const FINISHED = ["Succeeded", "Failed", "UpstreamFailed", "Skipped"];

  function phaseClass(phase) { return PHASES.includes(phase) ? "st-" + phase : "st-none"; }
  function setPhaseClass(el, phase) {
    for (const c of Array.from(el.classList)) { if (c.startsWith("st-")) el.classList.remove(c); }
    el.classList.add(phaseClass(phase));
  }
  function setPhaseBadge(container, phase) {
    const badge = container && container.querySelector("[data-phase]");
    if (badge) { badge.textContent = phase; setPhaseClass(badge, phase); }
  }

  let refreshTimer = null;
  function refresh(delay) {
    // Fetch this page again and replace every [data-refresh] section (at most once per `delay` ms).
    if (refreshTimer) return;
    refreshTimer = setTimeout(async () => {
      refreshTimer = null;
      try {
        const answer = await fetch(window.location.href, { credentials: "same-origin" });
        if (!answer.ok) return;
        const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
        for (const old of document.querySelectorAll("[data-refresh]")) {
          const next = fresh.getElementById(old.id);
          if (next) old.replaceWith(document.importNode(next, true));
        }
      } catch (err) { /* the next event tries again */ }
    }, delay);
  }

  function onTask(m) {
    const index = m.mapIndex === null || m.mapIndex === undefined ? "" : String(m.mapIndex);
    if (page === "run") {
      if (index === "") {
        for (const node of document.querySelectorAll("g.node")) {
          if (node.dataset.task === m.task) { setPhaseClass(node, m.phase); node.dataset.phase = m.phase; }
        }
      }
      for (const row of document.querySelectorAll("tr[data-row]")) {
        if (row.dataset.row !== m.task + "|" + index) continue;
        setPhaseBadge(row.querySelector("[data-col=phase]"), m.phase);
        row.querySelector("[data-col=attempts]").textContent = String(m.attempts);
        row.querySelector("[data-col=exit]").textContent = m.exitCode === null || m.exitCode === undefined ? "" : String(m.exitCode);
      }
      refresh(2000);
    } else if (page === "dag") {
      let found = false;
      for (const cell of document.querySelectorAll("a[data-cell]")) {
        if (cell.dataset.cell === m.run + "|" + m.task) { setPhaseClass(cell, m.phase); found = true; }
      }
      if (!found) refresh(2000);
    } else if (page === "task") {
      if (m.task !== body.dataset.task || index !== (body.dataset.mapIndex || "")) return;
      if (m.phase !== body.dataset.attemptPhase) {
        body.dataset.attemptPhase = m.phase;
        setPhaseBadge(document.getElementById("task-phase"), m.phase);
        refresh(300);
        if (FINISHED.includes(m.phase) && !document.getElementById("log").dataset.stream) {
          setTimeout(() => window.location.reload(), 1500); // the finished attempt's whole log
        }
      }
    }
  }

  function onRun(m) {
    if (page === "run" && m.name === body.dataset.run) {
      setPhaseBadge(document.getElementById("run-phase"), m.phase);
      const [done, total] = (m.progress || "0/0").split("/");
      const bar = document.getElementById("run-progress");
      if (bar && Number(total)) { bar.max = Number(total); bar.value = Number(done); }
      const text = document.getElementById("run-progress-text");
      if (text) text.textContent = m.progress || "";
      refresh(1000);
    } else if (page === "dag") {
      const head = Array.from(document.querySelectorAll("a[data-run-head]")).find((a) => a.dataset.runHead === m.name);
      if (head) setPhaseClass(head, m.phase); else refresh(1000);
    } else if (page === "dags") {
      refresh(2000);
    }
  }

  function follow() {
    if (!["dags", "dag", "run", "task"].includes(page)) return;
    const query = new URLSearchParams();
    if (ns) query.set("ns", ns);
    if (body.dataset.run) query.set("run", body.dataset.run);
    else if (body.dataset.dag) query.set("dag", body.dataset.dag);
    const source = new EventSource("/events?" + query.toString());
    const live = document.getElementById("live");
    source.onopen = () => live && live.classList.add("on");
    source.onerror = () => live && live.classList.remove("on");
    source.addEventListener("snapshot", (e) => {
      for (const m of JSON.parse(e.data)) { if (m.kind === "task") onTask(m); else if (m.kind === "run") onRun(m); }
    });
    source.addEventListener("task", (e) => onTask(JSON.parse(e.data)));
    source.addEventListener("run", (e) => onRun(JSON.parse(e.data)));
    // Free the connection at once when leaving the page (browsers allow 6 per host over HTTP/1.1).
    window.addEventListener("pagehide", () => source.close());
  }

  function followLog() {
    const log = document.getElementById("log");
    if (!log || !log.dataset.stream) return;
    const source = new EventSource(log.dataset.stream);
    window.addEventListener("pagehide", () => source.close());
    source.addEventListener("line", (e) => { log.appendChild(document.createTextNode(JSON.parse(e.data))); });
    source.addEventListener("end", () => { source.close(); log.dataset.ended = "true"; });
    source.addEventListener("error", (e) => {
      if (e.data) log.appendChild(document.createTextNode("\n[log: " + JSON.parse(e.data) + "]\n"));
      source.close();
    });
  }

  follow();
  followLog();
})();
