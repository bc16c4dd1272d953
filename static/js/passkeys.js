// Passkeys: allauth's own script (static mfa/js/webauthn.js) asks the browser for a
// passkey and posts it; when the browser refuses or the user cancels, it only raises
// an `allauth.error` event. This shows the page's own message for it instead, so a
// failed passkey never looks like nothing happened.
(function () {
  "use strict";
  document.addEventListener("allauth.error", (event) => {
    const messages = document.querySelectorAll(".passkey-error");
    if (!messages.length) return;
    event.preventDefault();
    console.warn("passkey:", event.detail && event.detail.exception);
    for (const message of messages) message.hidden = false;
  });
})();
