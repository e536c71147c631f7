import { svelte } from "@sveltejs/vite-plugin-svelte";
import { defineConfig } from "vitest/config";

// The app is served from the Tauri bundle, never from a network: relative asset paths,
// no inline scripts (the CSP forbids them), and no module preload polyfill (inline code).
export default defineConfig({
  base: "./",
  clearScreen: false,
  plugins: [svelte()],
  build: {
    target: "es2021",
    outDir: "dist",
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
  },
});
