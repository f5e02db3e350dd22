// The desk's issue page, on top of forms that work without it:
// - the fields save as the editor types (a moment after the last key), with the state
//   shown ("Unsaved changes…", "Saving…", "All changes saved · revision 7");
// - adding, removing and moving articles happen in place, without a reload, and the
//   last remove or move can be undone;
// - every save carries the revision the page shows: a save made after another tab or
//   editor changed the issue is refused by the desk and shown here, and the text typed
//   stays in the fields;
// - nothing unsaved is left behind by a click: each action saves the fields first, and
//   leaving the page with unsaved text asks first.
(() => {
  "use strict";
  const root = document.getElementById("desk-issue");
  if (!root || root.dataset.editable === undefined) return;
  const state = document.getElementById("save-state");
  const DELAY = 700; // ms after the last key
  const timers = new Map();
  const dirty = new Set();
  const inflight = new Set();
  let chain = Promise.resolve();
  let conflict = false;

  // Every exchange with the desk, one after another: a save, an action and the redraws
  // after them never cross, so the revision this page holds is always its own.
  function serial(task) {
    chain = chain.then(task, task);
    return chain;
  }

  const revision = () => root.dataset.revision;

  function adopt(number) {
    root.dataset.revision = String(number);
    for (const input of document.querySelectorAll("input[name=revision]")) {
      input.value = String(number);
    }
  }

  function say(text, kind) {
    state.textContent = text;
    state.dataset.kind = kind;
  }

  async function post(url, body) {
    body.set("revision", revision());
    let answer;
    try {
      answer = await fetch(url, {
        method: "POST", body, credentials: "same-origin",
        headers: {Accept: "application/json"},
      });
    } catch (error) {
      return {ok: false, status: 0, data: {message: "the desk cannot be reached; your text is kept here"}};
    }
    let data;
    try {
      data = await answer.json();
    } catch (error) {
      data = {message: `the desk answered HTTP ${answer.status}`};
    }
    if (answer.ok && typeof data.revision === "number") adopt(data.revision);
    return {ok: answer.ok, status: answer.status, data};
  }

  function changedElsewhere(message) {
    conflict = true;
    say(message, "conflict");
    const reload = document.createElement("button");
    reload.type = "button";
    reload.textContent = "Reload the issue";
    reload.addEventListener("click", () => location.reload());
    state.append(" ", reload);
  }

  function refused(result) {
    const message = result.data.message || result.data.error || "not saved";
    if (result.data.conflict) {
      changedElsewhere(`Not saved: ${message}.`);
      return;
    }
    say(`Not saved: ${message}`, "error");
  }

  function save(form) {
    clearTimeout(timers.get(form));
    timers.delete(form);
    return serial(async () => {
      if (!dirty.has(form) || conflict) return;
      dirty.delete(form);
      inflight.add(form);
      say("Saving…", "saving");
      const result = await post(form.action, new FormData(form));
      inflight.delete(form);
      if (result.ok) {
        if (!dirty.size) say(`All changes saved · revision ${revision()}`, "saved");
        retitle(form);
        await refresh(["preflight-panel", "week"]);
      } else {
        dirty.add(form);
        refused(result);
      }
    });
  }

  // An article's own title for this issue, shown at once in its line and its buttons'
  // names (the line itself is not redrawn while its editor is open).
  function retitle(form) {
    const input = form.querySelector("input[name=title]");
    const item = form.closest("li[data-article]");
    if (!input || !item) return;
    const title = input.value.trim() || input.placeholder;
    const shown = item.querySelector(":scope > strong");
    if (shown) shown.textContent = title;
    for (const button of item.querySelectorAll("button[aria-label]")) {
      const verb = button.getAttribute("aria-label").split(":")[0];
      button.setAttribute("aria-label", `${verb}: ${title}`);
    }
  }

  async function flush() {
    for (const form of [...dirty]) await save(form);
    await chain;
    return dirty.size === 0 && !conflict;
  }

  function edited(event) {
    const form = event.target.form;
    if (!form || !form.matches("[data-autosave]") || conflict) return;
    dirty.add(form);
    say("Unsaved changes…", "unsaved");
    clearTimeout(timers.get(form));
    timers.set(form, setTimeout(() => save(form), DELAY));
  }

  document.addEventListener("input", edited);
  document.addEventListener("change", edited);

  // The regions a change redraws, taken from the page as the desk now renders it; the
  // fields the editor types in are never redrawn under their hands.
  async function refresh(regions) {
    let answer;
    try {
      answer = await fetch(location.href, {credentials: "same-origin", headers: {Accept: "text/html"}});
    } catch (error) {
      return;
    }
    if (!answer.ok) return;
    const page = new DOMParser().parseFromString(await answer.text(), "text/html");
    const latest = page.getElementById("desk-issue");
    if (latest && Number(latest.dataset.revision) > Number(revision())) {
      // saved by another tab or editor since: redrawn, their change would be taken for
      // ours and our next save would overwrite it unseen
      changedElsewhere("This issue was changed in another tab or by another editor: " +
        "your text is still in the fields; copy what you need and reload.");
      return;
    }
    const open = new Set([...document.querySelectorAll("details[open][id]")].map((d) => d.id));
    const focused = document.activeElement;
    const typing = focused && focused.matches("input, textarea, select");
    for (const id of regions) {
      const shown = document.getElementById(id);
      const fresh = page.getElementById(id);
      if (!shown || !fresh || (typing && shown.contains(focused))) continue;  // under their hands
      shown.replaceWith(fresh);
    }
    for (const details of document.querySelectorAll("details[id]")) {
      if (open.has(details.id)) details.open = true;
    }
    for (const frame of document.querySelectorAll(".frames iframe")) {
      frame.src = frame.getAttribute("src");
    }
  }

  const ALL = ["week", "items-panel", "pool-panel", "preflight-panel"];

  async function act(form, submitter) {
    if (!(await flush())) return;
    await serial(() => acting(form, submitter));
  }

  async function acting(form, submitter) {
    if (conflict) return;
    const buttons = form.querySelectorAll("button");
    for (const button of buttons) button.disabled = true;
    const body = new FormData(form, submitter);
    const result = await post(form.action, body);
    if (!result.ok) {
      for (const button of buttons) button.disabled = false;
      refused(result);
      return;
    }
    if (form.dataset.action === "reload") {
      location.reload();
      return;
    }
    await refresh(ALL);
    say(`All changes saved · revision ${revision()}`, "saved");
    const notice = document.getElementById("notice");
    if (notice && !notice.textContent.trim() && result.data.message) {
      notice.textContent = "";
      const line = document.createElement("div");
      line.className = "flash ok";
      line.textContent = result.data.message[0].toUpperCase() + result.data.message.slice(1) + ".";
      notice.append(line);
    }
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    event.preventDefault();
    if (form.matches("[data-autosave]")) {
      dirty.add(form);
      await save(form);
      return;
    }
    if (form.matches("[data-action]")) {
      await act(form, event.submitter);
      return;
    }
    // a form that leaves the page (a test mail, the feed, send now, a filter): the fields
    // are saved first, then it goes as it would without this script
    if (await flush()) HTMLFormElement.prototype.submit.call(form);
  });

  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-open]");
    if (!link) return;
    const details = document.getElementById(link.dataset.open);
    if (details && details.tagName === "DETAILS") details.open = true;
  });

  window.addEventListener("beforeunload", (event) => {
    if (dirty.size || inflight.size) {
      event.preventDefault();
      event.returnValue = "";
    }
  });

  // Drag an article to reorder it, beside the ↑ and ↓ buttons.
  let dragged = null;
  document.addEventListener("dragstart", (event) => {
    const item = event.target.closest && event.target.closest("#picked li[data-article]");
    if (!item) return;
    dragged = item;
    item.classList.add("dragging");
  });
  document.addEventListener("dragend", () => {
    if (dragged) dragged.classList.remove("dragging");
  });
  document.addEventListener("dragover", (event) => {
    if (dragged && event.target.closest && event.target.closest("#picked li[data-article]")) {
      event.preventDefault();
    }
  });
  document.addEventListener("drop", async (event) => {
    const target = event.target.closest && event.target.closest("#picked li[data-article]");
    if (!dragged || !target || target === dragged) return;
    event.preventDefault();
    const items = [...document.querySelectorAll("#picked li[data-article]")];
    const mover = dragged.querySelector("form");
    if (!mover || !(await flush())) return;
    const body = new FormData(mover);
    body.set("position", String(items.indexOf(target) + 1));
    await serial(async () => {
      const result = await post(mover.action, body);
      if (result.ok) await refresh(ALL);
      else refused(result);
    });
  });
  function draggable() {
    for (const item of document.querySelectorAll("#picked li[data-article]")) item.draggable = true;
  }
  draggable();
  new MutationObserver(draggable).observe(root, {childList: true, subtree: true});
})();
