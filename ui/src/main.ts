// Chartroom's window. Everything the clinic's records say is rendered as text by Svelte's
// templates (never {@html}), so nothing a user or a record supplies can become markup.
import { mount } from "svelte";
import "uplot/dist/uPlot.min.css";
import "./style.css";
import App from "./App.svelte";

mount(App, { target: document.getElementById("app") as HTMLElement });
