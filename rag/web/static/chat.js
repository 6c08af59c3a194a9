// The chat, run by gr.HTML's js_on_load with (element, trigger, props, server, upload, watch).
//
// Questions go into a queue in the order they were sent and are answered one at a time, so
// none is lost and each follow-up sees the question before it. The box is emptied at the
// moment a question is sent and never written to afterwards. When a reply arrives, its turn
// (question and answer) is scrolled to the top of the view. The conversation is kept in this
// browser's localStorage. Replies are HTML made by rag/web/render.py, which escapes all text
// from documents; everything else here is set with textContent.
//
// With an LLM endpoint configured (rag serve --llm-url), a reply also names a written-answer
// job: the extracted answer and the sources are shown at once, then the written answer's
// text is added as server.written_poll returns it (rag/web/written.py), with a button that
// stops it (server.written_stop shuts the connection to the endpoint). Its end, checked, comes
// as HTML from render.py; a failure is one line, and the extracted answer stays.
(function () {
  const KEY = "rag-zh.chat.v1";
  const MAX_TURNS = 40;
  const root = element.querySelector(".rag-chat");
  const log = root.querySelector(".rag-transcript");
  const empty = root.querySelector(".rag-empty");
  const box = root.querySelector("#rag-question");
  const form = root.querySelector("form.rag-ask");
  const undoBar = root.querySelector(".rag-undo");
  const topK = root.querySelector("#rag-top-k");
  const filter = root.querySelector(".rag-filter");
  const filterDocs = root.querySelector(".rag-filter-docs");
  const filterSearch = root.querySelector("#rag-filter-search");
  const dateFrom = root.querySelector("#rag-date-from");
  const dateTo = root.querySelector("#rag-date-to");
  const docType = root.querySelector("#rag-doc-type");
  const filterSummary = root.querySelector(".rag-filter-summary");

  let turns = load();
  let cleared = null; // the turns removed by 清空对话, until undone or replaced
  const queue = [];
  let busy = false;

  function load() {
    try {
      const saved = JSON.parse(localStorage.getItem(KEY) || "[]");
      return Array.isArray(saved) ? saved.filter((t) => t && typeof t.asked === "string") : [];
    } catch (e) {
      return [];
    }
  }
  function save() {
    try {
      localStorage.setItem(KEY, JSON.stringify(turns.slice(-MAX_TURNS)));
    } catch (e) {
      /* storage full or disabled: the chat still works, it is just not kept */
    }
  }
  function uid() {
    return Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
  }
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function button(label, cls, onClick, title) {
    const b = el("button", "rag-btn rag-btn-small " + (cls || ""), label);
    b.type = "button";
    if (title) b.title = title;
    b.addEventListener("click", onClick);
    return b;
  }

  // -- drawing turns --------------------------------------------------------------------
  function nodeOf(turn) {
    return log.querySelector('[data-turn="' + turn.id + '"]');
  }
  function draw(turn) {
    let node = nodeOf(turn);
    if (!node) {
      node = el("article", "rag-turn");
      node.dataset.turn = turn.id;
      const user = el("div", "rag-user");
      user.append(el("span", "rag-user-label", "问"), el("span", "rag-user-text", turn.asked));
      node.append(user, el("div", "rag-reply"), el("div", "rag-actions"));
      log.append(node);
    }
    const reply = node.querySelector(".rag-reply");
    const actions = node.querySelector(".rag-actions");
    actions.replaceChildren();
    if (turn.pending) {
      reply.className = "rag-reply rag-pending";
      reply.textContent = queue.includes(turn) ? "排队中…" : "正在检索…";
      reply.setAttribute("aria-busy", "true");
    } else {
      reply.className = "rag-reply" + (turn.ok ? " rag-reply-done" : " rag-reply-error");
      reply.removeAttribute("aria-busy");
      reply.innerHTML = turn.html || "";
      if (turn.written) drawWritten(turn, reply);
      actions.append(
        button("复制", "rag-copy", () => copy(turn, actions.querySelector(".rag-copy")), "复制答案、依据和出处"),
        button("重新回答", "rag-regenerate", () => regenerate(turn), "按当前的设置和知识库重新回答"),
      );
      if (turn.ok) {
        for (const [vote, label, title] of [["up", "👍", "回答有用"], ["down", "👎", "回答没用"]]) {
          const b = button(label, "rag-vote rag-vote-" + vote, () => sendFeedback(turn, vote, b), title);
          b.setAttribute("aria-label", title);
          b.setAttribute("aria-pressed", turn.vote === vote ? "true" : "false");
          actions.append(b);
        }
      }
    }
    empty.hidden = turns.length > 0;
    return node;
  }
  function redrawAll() {
    log.querySelectorAll(".rag-turn").forEach((n) => n.remove());
    turns.forEach(draw);
    empty.hidden = turns.length > 0;
  }

  // Bring a turn's top (the question, then the answer) into view: inside the transcript's
  // own scroll box, then in the window if the box itself is off screen.
  function reveal(node) {
    const boxTop = log.getBoundingClientRect().top;
    log.scrollTop += node.getBoundingClientRect().top - boxTop - 8;
    const top = node.getBoundingClientRect().top;
    const limit = window.innerHeight - Math.min(160, window.innerHeight / 3);
    if (top < 0 || top > limit) window.scrollBy(0, top - 8);
  }

  // -- the written answer: streamed text, a stop button, then the checked end --------------
  function drawWritten(turn, reply) {
    const w = turn.written;
    let box = reply.querySelector(".rag-written");
    if (!box) {
      box = el("section", "rag-written");
      box.setAttribute("aria-label", "生成的回答");
      box.setAttribute("aria-live", "polite");
      const head = el("div", "rag-written-head");
      head.append(el("span", "rag-written-label", "生成的回答"),
        el("span", "rag-written-model", (w.model ? "由 " + w.model + " " : "") + "根据下方出处撰写，请以出处原文为准"));
      box.append(head, el("div", "rag-written-slot"));
      const body = reply.querySelector(".rag-reply-body") || reply;
      body.insertBefore(box, body.querySelector(".rag-sources-head")); // before the sources, or at the end
    }
    const head = box.querySelector(".rag-written-head");
    const slot = box.querySelector(".rag-written-slot");
    let stop = head.querySelector(".rag-written-stop");
    if (w.html) {
      if (stop) stop.remove();
      box.removeAttribute("aria-busy");
      slot.innerHTML = w.html;
      return;
    }
    box.setAttribute("aria-busy", "true");
    if (!stop) {
      stop = button("停止生成", "rag-btn-stop rag-written-stop", () => stopWritten(turn), "停止生成这个回答");
      head.append(stop);
    }
    stop.disabled = !!w.stopping;
    let text = slot.querySelector(".rag-written-text");
    if (!text) {
      text = el("div", "rag-written-text rag-written-streaming");
      slot.replaceChildren(text, el("span", "rag-written-wait", "正在生成…"));
    }
    text.textContent = w.text || "";
    slot.querySelector(".rag-written-wait").hidden = !!w.text;
  }
  function redrawWritten(turn) {
    const node = nodeOf(turn);
    if (node && turn.written) drawWritten(turn, node.querySelector(".rag-reply"));
  }
  function ended(w, res) {
    w.html = res.html;
    w.final = res.final || "";
    delete w.job;
    delete w.text;
    delete w.following;
    delete w.stopping;
  }
  // Ask for new text until the job is done; each call returns as soon as some arrives.
  async function follow(turn) {
    const w = turn.written;
    if (!w || w.html || !w.job || w.following) return;
    w.following = true;
    w.text = "";
    let cursor = 0;
    for (;;) {
      let res;
      try {
        res = await server.written_poll({ job: w.job, cursor: cursor });
      } catch (e) {
        res = { done: true, html: noticeHtml("生成的回答已中断：无法连接服务器，可点「重新回答」再试"), final: "" };
      }
      if (turn.written !== w || w.stopping) return; // stopped, cleared or asked again meanwhile
      if (res.text) w.text += res.text;
      if (typeof res.cursor === "number") cursor = res.cursor;
      if (res.done) {
        ended(w, res);
        save();
      }
      redrawWritten(turn);
      if (res.done) return;
    }
  }
  function noticeHtml(text) {
    const body = el("div", "rag-written-body");
    body.append(el("div", "rag-written-notice", text));
    return body.outerHTML;
  }
  async function stopWritten(turn) {
    const w = turn.written;
    if (!w || w.html || w.stopping) return;
    w.stopping = true;
    redrawWritten(turn);
    let res = null;
    try {
      res = await server.written_stop({ job: w.job });
    } catch (e) {
      res = null;
    }
    if (turn.written !== w) return;
    if (!res || !res.html) {
      const body = el("div", "rag-written-body");
      if (w.text) body.append(el("div", "rag-written-text", w.text));
      body.append(el("div", "rag-written-notice", "已停止生成"));
      res = { html: body.outerHTML, final: w.text || "" };
    }
    ended(w, res);
    save();
    redrawWritten(turn);
  }
  function history(turn) {
    const out = [];
    for (let i = turns.indexOf(turn) - 1; i >= 0 && out.length < 3; i--) {
      const t = turns[i];
      const said = (t.written && t.written.final) || (t.answer && t.answer.answer) || "";
      if (t.ok && t.question && said) out.unshift([t.question, said]);
    }
    return out;
  }

  // -- asking ---------------------------------------------------------------------------
  function previousQuestion(turn) {
    for (let i = turns.indexOf(turn) - 1; i >= 0; i--) {
      if (turns[i].ok && turns[i].question) return turns[i].question;
    }
    return "";
  }
  function scope() {
    const docs = Array.from(filterDocs.querySelectorAll("input:checked")).map((i) => i.value);
    return { docs: docs, from: dateFrom.value || "", to: dateTo.value || "", type: docType.value || "" };
  }
  async function answer(turn) {
    let res;
    try {
      res = await server.ask({
        question: turn.asked,
        previous: previousQuestion(turn),
        top_k: Number(topK.value) || 5,
        scope: scope(),
        history: history(turn),
      });
    } catch (e) {
      res = { ok: false, html: '<div class="rag-reply-body"><div class="rag-error" role="alert">⚠ 无法连接服务器，请稍后点「重新回答」。</div></div>' };
    }
    if (!turns.includes(turn)) return; // cleared while it was being answered
    turn.pending = false;
    turn.ok = !!res.ok;
    turn.html = res.html;
    turn.question = res.question || "";
    turn.answer = res.answer || null;
    const job = res.written;
    turn.written = job ? { job: job.job || "", model: job.model || "", text: "" } : null;
    if (job && job.done) ended(turn.written, job);
    delete turn.vote;
    save();
    reveal(draw(turn));
    follow(turn); // not awaited: the next question need not wait for the written answer
  }
  async function pump() {
    if (busy) return;
    busy = true;
    while (queue.length) {
      const turn = queue.shift();
      draw(turn);
      await answer(turn);
    }
    busy = false;
  }
  function ask(text) {
    if (!text.trim()) return;
    dropUndo();
    const turn = { id: uid(), asked: text, pending: true };
    turns.push(turn);
    queue.push(turn);
    save();
    draw(turn);
    pump();
  }
  function regenerate(turn) {
    if (turn.pending) return;
    stopWritten(turn);
    turn.written = null;
    turn.pending = true;
    queue.push(turn);
    draw(turn);
    pump();
  }

  // -- the box: Enter sends, Shift+Enter is a new line, nothing is sent while an IME composes
  box.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      const text = box.value;
      box.value = "";
      fit();
      ask(text);
    }
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = box.value;
    box.value = "";
    fit();
    ask(text);
    box.focus({ preventScroll: true });
  });
  function fit() {
    box.style.height = "auto";
    box.style.height = Math.min(box.scrollHeight + 2, 160) + "px";
  }
  box.addEventListener("input", fit);
  root.querySelectorAll(".rag-example").forEach((b) => b.addEventListener("click", () => ask(b.textContent)));

  // -- copy, feedback ---------------------------------------------------------------------
  function plainAnswer(turn) {
    const a = turn.answer;
    if (!a || a.answer === null || a.answer === undefined) {
      const tmp = el("div");
      tmp.innerHTML = turn.html || "";
      return tmp.innerText || tmp.textContent || "";
    }
    const lines = ["问：" + turn.asked, "答：" + a.answer];
    if (a.evidence) lines.push("依据：" + a.evidence);
    const span = a.answer_span;
    const p = span && a.passages ? a.passages[span.passage] : null;
    if (p) lines.push("出处：" + [p.title, p.published, p.source].filter(Boolean).join("  "));
    if (turn.written && turn.written.final) lines.push("生成的回答：" + turn.written.final);
    return lines.join("\n");
  }
  async function copy(turn, b) {
    const text = plainAnswer(turn);
    let done = false;
    try {
      await navigator.clipboard.writeText(text);
      done = true;
    } catch (e) {
      const area = el("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.append(area);
      area.select();
      try {
        done = document.execCommand("copy");
      } catch (e2) {
        done = false;
      }
      area.remove();
    }
    b.textContent = done ? "已复制" : "复制失败";
    setTimeout(() => (b.textContent = "复制"), 1600);
  }
  async function sendFeedback(turn, vote, b) {
    let res;
    try {
      res = await server.feedback({ turn: turn.id, vote: vote, answer: turn.answer });
    } catch (e) {
      res = { ok: false };
    }
    if (res && res.ok) {
      turn.vote = vote;
      save();
      draw(turn);
    } else {
      b.title = "反馈没有保存，请稍后再试";
      b.textContent = "⚠";
    }
  }

  // -- clear, with undo -----------------------------------------------------------------
  function dropUndo() {
    cleared = null;
    undoBar.hidden = true;
  }
  root.querySelector("#rag-clear").addEventListener("click", () => {
    if (!turns.length) return;
    cleared = turns;
    turns = [];
    queue.length = 0;
    cleared.forEach(stopWritten); // what was being written stops, and is kept as far as it came
    save();
    redrawAll();
    undoBar.hidden = false;
  });
  undoBar.querySelector("button").addEventListener("click", () => {
    if (!cleared) return;
    turns = cleared.filter((t) => !t.pending).concat(turns);
    dropUndo();
    save();
    redrawAll();
  });

  // -- scope: documents and dates -------------------------------------------------------
  async function loadDocs() {
    let rows = [];
    try {
      rows = await server.documents();
    } catch (e) {
      rows = [];
    }
    const checked = new Set(scope().docs);
    filterDocs.replaceChildren();
    for (const r of rows) {
      const label = el("label");
      const input = el("input");
      input.type = "checkbox";
      input.value = r.id;
      input.checked = checked.has(r.id);
      label.append(input, el("span", "", r.title), el("span", "rag-muted", r.published ? r.published.slice(0, 10) : "日期未知"));
      label.dataset.text = (r.title + " " + r.file + " " + r.published).toLowerCase();
      filterDocs.append(label);
    }
    if (!rows.length) filterDocs.append(el("div", "rag-muted", "知识库中还没有文档"));
    const kind = docType.value;
    const kinds = Array.from(new Set(rows.map((r) => r.type).filter(Boolean))).sort();
    if (kind && !kinds.includes(kind)) kinds.push(kind);
    docType.replaceChildren(el("option", "", "全部类型"), ...kinds.map((k) => el("option", "", k)));
    docType.options[0].value = "";
    docType.value = kind;
    narrow();
  }
  function narrow() {
    const q = filterSearch.value.trim().toLowerCase();
    filterDocs.querySelectorAll("label").forEach((l) => (l.hidden = q && !l.dataset.text.includes(q)));
  }
  function summarize() {
    const s = scope();
    const parts = [];
    if (s.docs.length) parts.push(s.docs.length + " 篇文档");
    if (s.type) parts.push("类型「" + s.type + "」");
    if (s.from || s.to) parts.push((s.from || "最早") + " 至 " + (s.to || "最新"));
    filterSummary.textContent = parts.length ? "查找范围：" + parts.join("，") : "查找范围：全部文档";
  }
  filter.addEventListener("toggle", () => filter.open && loadDocs());
  filterSearch.addEventListener("input", narrow);
  filterDocs.addEventListener("change", summarize);
  dateFrom.addEventListener("change", summarize);
  dateTo.addEventListener("change", summarize);
  docType.addEventListener("change", summarize);
  root.querySelector("#rag-filter-clear").addEventListener("click", () => {
    filterDocs.querySelectorAll("input:checked").forEach((i) => (i.checked = false));
    dateFrom.value = "";
    dateTo.value = "";
    docType.value = "";
    summarize();
  });
  window.addEventListener("rag-docs-changed", () => filter.open && loadDocs());

  // -- start: the saved conversation, its unfinished questions asked again ---------------
  redrawAll();
  log.scrollTop = log.scrollHeight; // the box's own scroll only: the page stays at the top
  for (const t of turns) if (t.pending) queue.push(t);
  for (const t of turns) {
    if (t.written) {
      delete t.written.following;
      delete t.written.stopping;
      follow(t); // a reload while a written answer came: its job may still be running
    }
  }
  summarize();
  pump();
})();
