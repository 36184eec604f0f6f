// berth's web page: what HTML alone cannot do. Every feature works without this script too:
// the search form submits, the copy text can be selected, a delete asks on its own page.
"use strict";

// Search as you type: fetch the same page for the new query and swap in its results.
function liveSearch() {
  const form = document.querySelector("form.search");
  const results = document.getElementById("results");
  if (!form || !results) return;
  let timer = null;
  let inflight = null;
  const run = () => {
    const params = new URLSearchParams(new FormData(form));
    if (params.get("sort") === "name") params.delete("sort");
    if (!params.get("q")) params.delete("q");
    const query = params.toString();
    const url = form.action + (query ? "?" + query : "");
    if (inflight) inflight.abort();
    inflight = new AbortController();
    fetch(url, { headers: { Accept: "text/html" }, signal: inflight.signal, credentials: "same-origin" })
      .then((r) => (r.ok ? r.text() : Promise.reject(new Error(String(r.status)))))
      .then((text) => {
        const doc = new DOMParser().parseFromString(text, "text/html");
        const fresh = doc.getElementById("results");
        if (fresh) {
          results.replaceChildren(...fresh.childNodes);
          history.replaceState(null, "", url);
        }
      })
      .catch((e) => {
        if (e.name !== "AbortError") form.submit();
      });
  };
  form.querySelectorAll("[data-live]").forEach((el) => {
    el.addEventListener(el.tagName === "SELECT" ? "change" : "input", () => {
      clearTimeout(timer);
      timer = setTimeout(run, 120);
    });
  });
}

// Copy buttons: the text of the element the button names, then a word that it worked.
function copyButtons() {
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.copy");
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    const text = source.textContent;
    const done = (word) => {
      button.textContent = word;
      setTimeout(() => (button.textContent = "Copy"), 2000);
    };
    const select = () => {
      const range = document.createRange();
      range.selectNodeContents(source);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(() => done("Copied"), () => { select(); done("Press Ctrl+C"); });
    } else {
      select();
      done(document.execCommand && document.execCommand("copy") ? "Copied" : "Press Ctrl+C");
    }
  });
}

// Delete forms ask first, in a dialog; the server asks again on a page of its own when a
// form arrives unconfirmed (no script).
function confirmDeletes() {
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.matches("form.delete") || form.querySelector("input[name=confirmed]")) return;
    event.preventDefault();
    const dialog = document.createElement("dialog");
    dialog.setAttribute("aria-labelledby", "confirm-title");
    const title = document.createElement("h2");
    title.id = "confirm-title";
    title.textContent = "Delete?";
    const text = document.createElement("p");
    text.textContent = form.dataset.confirm || "Delete this?";
    const actions = document.createElement("div");
    actions.className = "actions";
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.textContent = "Cancel";
    const yes = document.createElement("button");
    yes.type = "button";
    yes.className = "danger";
    yes.textContent = "Delete";
    actions.append(cancel, yes);
    dialog.append(title, text, actions);
    document.body.append(dialog);
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => dialog.remove());
    yes.addEventListener("click", () => {
      const confirmed = document.createElement("input");
      confirmed.type = "hidden";
      confirmed.name = "confirmed";
      confirmed.value = "yes";
      form.append(confirmed);
      form.submit();
    });
    dialog.showModal();
    cancel.focus();
  });
}

liveSearch();
copyButtons();
confirmDeletes();
