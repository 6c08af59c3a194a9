// The document list, run by gr.HTML's js_on_load with (element, trigger, props, server, upload, watch).
//
// Rows come from server.documents() and are drawn with textContent. Search and the status
// filter work in the page. Deleting asks for confirmation, then puts the selected ids into
// this component's value and fires its "remove_selected" event, which the server handles
// (and refuses without the right to write). The server answers with a new value: a version
// number, a notice, and this session's files that could not be read, which can be dismissed.
(function () {
  const root = element.querySelector(".rag-docs");
  const list = root.querySelector(".rag-docs-list");
  const search = root.querySelector("#rag-doc-search");
  const statusFilter = root.querySelector("#rag-doc-status");
  const count = root.querySelector(".rag-docs-count");
  const msg = root.querySelector(".rag-docs-msg");
  const preview = root.querySelector(".rag-docs-preview");
  const del = root.querySelector("#rag-doc-delete"); // absent when the app is read-only
  const confirmBar = root.querySelector(".rag-docs-confirm");
  let rows = [];
  const selected = new Set();
  const PICK_FIRST = "请先勾选要删除的文档。";

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function state() {
    try {
      const s = JSON.parse(props.value || "{}");
      return s && typeof s === "object" ? s : {};
    } catch (e) {
      return {};
    }
  }
  function setState(change) {
    props.value = JSON.stringify(Object.assign(state(), change));
  }
  function say(text, kind) {
    msg.replaceChildren();
    if (text) msg.append(el("div", "rag-notice rag-notice-" + (kind || "info"), text));
  }

  async function reload() {
    try {
      rows = await server.documents();
    } catch (e) {
      rows = [];
      say("无法读取文档列表，请刷新页面。", "warn");
    }
    const ids = new Set(rows.map((r) => r.id));
    for (const id of Array.from(selected)) if (!ids.has(id)) selected.delete(id);
    draw();
  }

  function allRows() {
    const failed = (state().failed || []).map((f) => ({
      id: "",
      failed: true,
      title: f.name,
      file: f.name,
      published: "",
      chunks: 0,
      status: "读取失败：" + f.reason,
      added: "",
      original: false,
    }));
    return rows.concat(failed);
  }
  function matches(r) {
    const q = search.value.trim().toLowerCase();
    const wanted = statusFilter.value;
    const moved = r.status.includes("移走");
    if ((wanted === "failed" && !r.failed) || (wanted === "moved" && !moved) || (wanted === "ok" && (r.failed || moved))) {
      return false;
    }
    if (!q) return true;
    return [r.title, r.file, r.published, r.status, r.added].join(" ").toLowerCase().includes(q);
  }

  function head() {
    const row = el("div", "rag-doc rag-doc-head");
    const all = el("input");
    all.type = "checkbox";
    all.setAttribute("aria-label", "全选列表中的文档");
    all.addEventListener("change", () => {
      list.querySelectorAll(".rag-doc:not(.rag-doc-head):not(.rag-doc-failed) input[type=checkbox]").forEach((box) => {
        box.checked = all.checked;
        pick(box.value, all.checked, box.closest(".rag-doc"));
      });
    });
    row.append(all, el("span", "", "标题"), el("span", "", "发布日期"), el("span", "", "段落"), el("span", "", "文件 · 状态"), el("span", "", ""));
    if (!del) all.hidden = true;
    return row;
  }
  function line(r) {
    const row = el("div", "rag-doc" + (r.failed ? " rag-doc-failed" : ""));
    row.setAttribute("role", "listitem");
    const box = el("input");
    box.type = "checkbox";
    box.value = r.id;
    box.setAttribute("aria-label", "选择「" + r.title + "」");
    box.hidden = r.failed || !del;
    box.checked = selected.has(r.id);
    if (box.checked) row.classList.add("rag-doc-selected");
    box.addEventListener("change", () => pick(r.id, box.checked, row));
    const title = el("button", "rag-doc-title", r.title);
    title.type = "button";
    title.title = r.failed ? r.status : "预览全文";
    if (!r.failed) title.addEventListener("click", () => show(r.id));
    const date = el("span", "rag-doc-cell", r.published ? r.published.slice(0, 16) : "日期未知");
    const chunks = el("span", "rag-doc-cell rag-doc-cell-num", String(r.chunks));
    const where = el("span", "rag-doc-cell");
    where.append(el("span", "", r.file), el("span", "rag-doc-status", r.status + (r.added ? " · 添加于 " + r.added : "")));
    const actions = el("span", "rag-doc-actions");
    if (r.failed) {
      const dismiss = el("button", "rag-btn rag-btn-small rag-doc-dismiss", "移除");
      dismiss.type = "button";
      dismiss.setAttribute("aria-label", "从列表中移除「" + r.title + "」的失败记录");
      dismiss.addEventListener("click", () => {
        setState({ failed: (state().failed || []).filter((f) => f.name !== r.title) });
        draw();
      });
      actions.append(dismiss);
    } else if (r.original) {
      if (/\.pdf$/i.test(r.file)) actions.append(fileButton("打开", r, true));
      actions.append(fileButton("下载原文", r, false));
    }
    row.append(box, title, date, chunks, where, actions);
    return row;
  }
  let shown = 0;
  function draw() {
    const visible = allRows().filter(matches);
    shown = visible.length;
    list.replaceChildren(head(), ...visible.map(line));
    if (!shown) list.append(el("div", "rag-doc rag-muted", rows.length ? "没有符合条件的文档" : "知识库中还没有文档"));
    counts();
  }
  function counts() {
    const failed = (state().failed || []).length;
    count.textContent = "共 " + rows.length + " 篇文档" + (failed ? "，" + failed + " 个文件读取失败" : "") +
      (shown !== rows.length + failed ? "；显示 " + shown + " 项" : "") +
      (selected.size ? "；已选 " + selected.size + " 篇" : "");
  }
  function pick(id, on, row) {
    if (!id) return;
    if (on) selected.add(id);
    else selected.delete(id);
    if (row) row.classList.toggle("rag-doc-selected", on);
    if (msg.textContent === PICK_FIRST) say("");
    confirmBar.hidden = true;
    counts();
  }

  async function show(id) {
    preview.replaceChildren(el("div", "rag-muted", "正在读取…"));
    let html;
    try {
      html = await server.preview(id);
    } catch (e) {
      html = "";
    }
    preview.innerHTML = html || '<div class="rag-notice rag-notice-warn">无法读取这篇文档。</div>';
    const top = preview.getBoundingClientRect().top;
    if (top > window.innerHeight * 0.8 || top < 0) preview.scrollIntoView({ block: "start" });
  }

  function fileButton(label, r, open) {
    const b = el("button", "rag-btn rag-btn-small rag-doc-" + (open ? "open" : "download"), label);
    b.type = "button";
    b.setAttribute("aria-label", label + "「" + r.title + "」");
    b.addEventListener("click", async () => {
      const tab = open ? window.open("", "_blank") : null;
      let res;
      try {
        res = await server.original(r.id);
      } catch (e) {
        res = { error: "无法连接服务器，请稍后再试。" };
      }
      if (res.error) {
        if (tab) tab.close();
        say(res.error, "warn");
        return;
      }
      const bytes = Uint8Array.from(atob(res.data), (c) => c.charCodeAt(0));
      // only a PDF is shown in the browser; anything else (HTML included) is a download
      const blob = new Blob([bytes], { type: open ? "application/pdf" : "application/octet-stream" });
      const url = URL.createObjectURL(blob);
      if (tab) {
        tab.location = url;
      } else {
        const a = el("a");
        a.href = url;
        a.download = res.name;
        document.body.append(a);
        a.click();
        a.remove();
      }
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    });
    return b;
  }

  if (del) {
    del.addEventListener("click", () => {
      if (!selected.size) {
        say(PICK_FIRST, "warn");
        return;
      }
      confirmBar.querySelector(".rag-confirm-text").textContent =
        "确定从知识库删除所选的 " + selected.size + " 篇文档吗？上传的原文件也会一起删除，删除后不能恢复。";
      confirmBar.hidden = false;
      confirmBar.querySelector(".rag-confirm-yes").focus();
    });
    confirmBar.querySelector(".rag-confirm-no").addEventListener("click", () => (confirmBar.hidden = true));
    confirmBar.querySelector(".rag-confirm-yes").addEventListener("click", () => {
      confirmBar.hidden = true;
      say("正在删除…");
      setState({ selected: Array.from(selected), notice: "" });
      trigger("remove_selected");
    });
  }
  search.addEventListener("input", draw);
  statusFilter.addEventListener("change", draw);

  watch("value", () => {
    const s = state();
    msg.innerHTML = s.notice || "";
    if (s.selected && !s.selected.length) selected.clear();
    reload();
    window.dispatchEvent(new CustomEvent("rag-docs-changed"));
  });
  reload();
})();
