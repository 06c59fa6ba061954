// Start page: practice handle + access code → call page. Checks the code's form here (a typo is
// explained at once), the server checks whether it exists. The code never goes into a URL.

import { clearAuth, normalizeCode, normalizeHost, storeAuth, takeStartError } from "./credentials.js";
import { duration, localPath, t } from "./i18n.js";

const form = document.getElementById("join-form");
const host = form.elements.namedItem("host");
const code = form.elements.namedItem("code");
const alertBox = document.getElementById("form-error");
const submit = form.querySelector("button[type=submit]");

function showError(message, field) {
  alertBox.textContent = message;
  for (const input of [host, code]) input.removeAttribute("aria-invalid");
  if (field) {
    field.setAttribute("aria-invalid", "true");
    field.focus();
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const handle = normalizeHost(host.value);
  const normalized = normalizeCode(code.value);
  if (!handle) {
    showError(t("error.host-missing"), host);
    return;
  }
  if (!normalized) {
    showError(t("error.code-format"), code);
    return;
  }
  storeAuth({ host: handle, code: normalized });
  location.assign(localPath("/call"));
});

// Back from the call page with an admission error: show it beside what was typed.
const returned = takeStartError();
if (returned) {
  host.value = returned.host ?? "";
  code.value = returned.code ?? "";
  const wait = returned.retryAfter ? duration(returned.retryAfter) : "";
  showError(t(`error.${returned.error}`, { wait }), code);
  if (returned.retryAfter) {
    // Trying again before the wait is over would only be refused again.
    submit.disabled = true;
    setTimeout(() => { submit.disabled = false; }, returned.retryAfter * 1000);
  }
} else {
  clearAuth();
}
