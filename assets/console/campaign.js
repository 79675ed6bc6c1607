// One campaign: refreshes the progress and contacts part every second from its fragment
// (server-rendered, escaped HTML), while the page is visible.
"use strict";
(function () {
  const box = document.getElementById("campaign-live");
  if (!box) return;
  async function refresh() {
    if (document.hidden) return;
    try {
      const r = await fetch(box.dataset.src, { credentials: "same-origin" });
      if (r.ok) {
        const html = await r.text();
        // Keep focus on a link that is still there after the update.
        const focused = document.activeElement && box.contains(document.activeElement)
          ? document.activeElement.getAttribute("href") : null;
        box.innerHTML = html;
        if (focused) {
          const again = box.querySelector('a[href="' + CSS.escape(focused) + '"]');
          if (again) again.focus();
        }
      }
    } catch (e) { /* the next tick tries again */ }
  }
  setInterval(refresh, 1000);
})();
