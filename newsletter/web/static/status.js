// A send followed live: the status page redraws itself from the desk every two seconds
// while the send is about to start or goes on (without this script it reloads every five).
(() => {
  "use strict";
  const root = document.getElementById("send-live");
  if (!root) return;
  async function tick() {
    let answer;
    try {
      answer = await fetch(root.dataset.url, {credentials: "same-origin", headers: {Accept: "text/html"}});
    } catch (error) {
      return setTimeout(tick, 5000);
    }
    if (answer.ok) {
      const page = new DOMParser().parseFromString(await answer.text(), "text/html");
      const fresh = page.getElementById("send-live");
      const shown = document.getElementById("send-live");
      if (fresh && shown) {
        shown.replaceWith(fresh);
        if (fresh.dataset.going !== "yes") return;
      }
    }
    setTimeout(tick, 2000);
  }
  setTimeout(tick, 2000);
})();
