// Shared helpers of the console pages: the session's CSRF token for fetch.
"use strict";
window.voxbridge = {
  csrf() {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  },
};
