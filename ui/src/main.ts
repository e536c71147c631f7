// Chartroom's first window: create the clinic vault, unlock it, see who is signed in, lock.
import { api, asAppError, ROLE_LABELS, type SignedIn } from "./api";
import { field, h, mount } from "./dom";

const root = document.getElementById("app") as HTMLElement;

function errorBox(id: string): HTMLParagraphElement {
  return h("p", { class: "error", id, role: "alert", hidden: true });
}

function showError(box: HTMLElement, message: string): void {
  box.textContent = message;
  box.hidden = false;
}

function busy(button: HTMLButtonElement, on: boolean, label: string): void {
  button.disabled = on;
  button.textContent = label;
}

function brand(subtitle: string): HTMLElement {
  return h(
    "header",
    { class: "brand" },
    h("img", { src: "./icon.png", alt: "", width: "48", height: "48" }),
    h("div", {}, h("h1", {}, "Chartroom"), h("p", { class: "subtitle" }, subtitle)),
  );
}

function firstRun(location: string): void {
  const name = h("input", { type: "text", autocomplete: "username", required: true, spellcheck: "false" });
  const password = h("input", { type: "password", autocomplete: "new-password", required: true });
  const confirm = h("input", { type: "password", autocomplete: "new-password", required: true });
  const error = errorBox("create-error");
  const submit = h("button", { type: "submit", id: "create-vault", class: "primary" }, "Create vault");
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "first-run-title" },
    h("h2", { id: "first-run-title" }, "Set up Chartroom for your clinic"),
    h(
      "p",
      {},
      "This creates the clinic's encrypted record store on this computer and its first administrator account.",
    ),
    field("admin-name", "Administrator user name", name, "Letters, digits, dots, dashes or underscores."),
    field("admin-password", "Password", password, "At least 8 characters. A short sentence is easy to remember."),
    field("admin-password-confirm", "Password again", confirm),
    error,
    submit,
    h("p", { class: "location" }, "Vault folder: ", h("code", {}, location)),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    if (password.value !== confirm.value) {
      showError(error, "The two passwords do not match.");
      confirm.focus();
      return;
    }
    busy(submit, true, "Creating the vault…");
    try {
      const created = await api.createVault(name.value.trim(), password.value);
      password.value = "";
      confirm.value = "";
      recoveryKey(created.recovery_key, created.signed_in);
    } catch (e) {
      showError(error, asAppError(e).message);
      busy(submit, false, "Create vault");
    }
  });
  mount(root, h("main", { class: "centered" }, brand("Offline, encrypted clinical records"), form));
  name.focus();
}

function recoveryKey(key: string, who: SignedIn): void {
  const check = h("input", { type: "checkbox", id: "recovery-confirm" });
  const next = h("button", { type: "button", id: "recovery-continue", class: "primary", disabled: true }, "Continue");
  check.addEventListener("change", () => {
    next.disabled = !check.checked;
  });
  next.addEventListener("click", () => home(who));
  mount(
    root,
    h(
      "main",
      { class: "centered" },
      brand("The vault is ready"),
      h(
        "section",
        { class: "card", "aria-labelledby": "recovery-title" },
        h("h2", { id: "recovery-title" }, "Write down the recovery key"),
        h(
          "p",
          {},
          "If every administrator forgets their password, this key is the only way back into the clinic's records. " +
            "It is shown only now and is not stored anywhere.",
        ),
        h("p", { class: "recovery-key", id: "recovery-key" }, key),
        h("p", { class: "hint" }, "Keep it on paper in a locked place. Anyone who has it can open every record."),
        h("div", { class: "check" }, check, h("label", { for: "recovery-confirm" }, "I have written down the recovery key and stored it safely.")),
        next,
      ),
    ),
  );
  check.focus();
}

function unlockScreen(location: string, notice?: string): void {
  const user = h("input", { type: "text", autocomplete: "username", required: true, spellcheck: "false" });
  const password = h("input", { type: "password", autocomplete: "current-password", required: true });
  const error = errorBox("unlock-error");
  const submit = h("button", { type: "submit", id: "unlock-submit", class: "primary" }, "Unlock");
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "unlock-title" },
    h("h2", { id: "unlock-title" }, "Unlock Chartroom"),
    notice ? h("p", { class: "notice", id: "unlock-notice" }, notice) : null,
    field("unlock-user", "User name", user),
    field("unlock-password", "Password", password),
    error,
    submit,
    h("p", { class: "location" }, "Vault folder: ", h("code", {}, location)),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    busy(submit, true, "Unlocking…");
    try {
      const who = await api.unlock(user.value.trim(), password.value);
      password.value = "";
      home(who);
    } catch (e) {
      password.value = "";
      showError(error, asAppError(e).message);
      busy(submit, false, "Unlock");
      password.focus();
    }
  });
  mount(root, h("main", { class: "centered" }, brand("Offline, encrypted clinical records"), form));
  user.focus();
}

let lockShortcut: ((e: KeyboardEvent) => void) | null = null;
let idleWatch: number | null = null;
let lastKeepAlive = 0;

/** Someone is at the keyboard: tell the backend, at most every 30 seconds. */
function activity(): void {
  const now = Date.now();
  if (now - lastKeepAlive > 30_000) {
    lastKeepAlive = now;
    api.keepAlive().catch(() => void start());
  }
}

function stopWatching(): void {
  if (lockShortcut) {
    document.removeEventListener("keydown", lockShortcut);
    lockShortcut = null;
  }
  if (idleWatch !== null) {
    window.clearInterval(idleWatch);
    idleWatch = null;
  }
  document.removeEventListener("keydown", activity);
  document.removeEventListener("pointerdown", activity);
}

/** The backend locks an idle session by itself; notice it and leave no trace on screen. */
function watchForIdleLock(): void {
  lastKeepAlive = Date.now();
  document.addEventListener("keydown", activity);
  document.addEventListener("pointerdown", activity);
  idleWatch = window.setInterval(() => {
    api
      .vaultStatus()
      .then((status) => {
        if (!status.signed_in) {
          stopWatching();
          mount(root);
          if (status.exists) unlockScreen(status.location, status.notice ?? "The vault is locked.");
          else void start();
        }
      })
      .catch(() => undefined);
  }, 5_000);
}

function home(who: SignedIn): void {
  const lockButton = h(
    "button",
    { type: "button", id: "lock-button", class: "secondary", title: "Lock (Ctrl+L)" },
    "Lock",
  );
  lockButton.addEventListener("click", () => void lockNow());
  lockShortcut = (e: KeyboardEvent) => {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "l") {
      e.preventDefault();
      void lockNow();
    }
  };
  document.addEventListener("keydown", lockShortcut);
  watchForIdleLock();
  const role = ROLE_LABELS[who.role];
  mount(
    root,
    h(
      "div",
      { class: "shell" },
      h(
        "header",
        { class: "topbar" },
        h("span", { class: "appname" }, "Chartroom"),
        h(
          "span",
          { class: "who", id: "signed-in" },
          "Signed in as ",
          h("strong", { id: "signed-in-user" }, who.user),
          " · ",
          h("span", { id: "signed-in-role" }, role),
        ),
        lockButton,
      ),
      h(
        "main",
        { class: "content" },
        h("h2", {}, who.recovery ? "Recovery session" : `Welcome, ${who.user}`),
        h(
          "p",
          {},
          "The clinic vault is unlocked. Lock it whenever you step away: Ctrl+L or the Lock button. It locks by itself after a few minutes without use.",
        ),
      ),
      h("footer", { class: "statusbar" }, h("span", {}, `${who.user} · ${role}`), h("span", {}, "Vault unlocked")),
    ),
  );
  lockButton.focus();
}

async function lockNow(): Promise<void> {
  stopWatching();
  // Clear the screen first, so nothing of the session stays visible or in the DOM.
  mount(root);
  try {
    await api.lock();
  } finally {
    await start("The vault is locked.");
  }
}

async function start(notice?: string): Promise<void> {
  try {
    const status = await api.vaultStatus();
    if (status.signed_in) {
      home(status.signed_in);
    } else if (status.exists) {
      unlockScreen(status.location, status.notice ?? notice);
    } else {
      firstRun(status.location);
    }
  } catch (e) {
    mount(root, h("main", { class: "centered" }, h("p", { class: "error", role: "alert" }, asAppError(e).message)));
  }
}

void start();
