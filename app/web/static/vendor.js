// The one place that names vendored files (app/web/vendor/manifest.json lists them).
export {
  h, html, render, Component, createContext, useState, useReducer, useEffect, useLayoutEffect,
  useRef, useMemo, useCallback, useContext,
} from "/static/vendor/htm@3.1.1/preact/standalone.module.js";
export { createClient } from "/static/vendor/graphql-ws@6.4.2/dist/client.js";
export { default as uPlot } from "/static/vendor/uplot@1.6.32/dist/uPlot.esm.js";
export { default as confetti } from "/static/vendor/canvas-confetti@1.9.4/dist/confetti.module.mjs";
