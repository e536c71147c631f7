import { defineConfig } from "vite";

// The app is served from the Tauri bundle, never from a network: relative asset paths,
// no inline scripts (the CSP forbids them), and no module preload polyfill (inline code).
export default defineConfig({
  base: "./",
  clearScreen: false,
  build: {
    target: "es2021",
    outDir: "dist",
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
});
