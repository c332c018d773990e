// Renders /api/v1/openapi.json and lets a reader send requests. Self-contained: no network
// access beyond this origin, no framework, no build step.
(function () {
  "use strict";
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value; else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  };
  const resolve = (doc, schema) => {
    if (schema && schema.$ref) {
      const name = schema.$ref.split("/").pop();
      return (doc.components && doc.components.schemas && doc.components.schemas[name]) || schema;
    }
    return schema;
  };
  const example = (doc, schema, depth) => {
    schema = resolve(doc, schema) || {};
    if (depth > 6) return null;
    if (schema.example !== undefined) return schema.example;
    if (schema.oneOf || schema.anyOf) return example(doc, (schema.oneOf || schema.anyOf)[0], depth + 1);
    const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
    if (schema.enum) return schema.enum[0];
    if (type === "object" || schema.properties) {
      const out = {};
      for (const [key, value] of Object.entries(schema.properties || {})) out[key] = example(doc, value, depth + 1);
      return out;
    }
    if (type === "array") return [example(doc, schema.items, depth + 1)];
    if (type === "integer" || type === "number") return 0;
    if (type === "boolean") return false;
    return "";
  };

  function operation(doc, path, method, op) {
    const params = (op.parameters || []).map((p) => resolve(doc, p));
    const inputs = {};
    const paramRows = params.map((p) => {
      const input = el("input", { placeholder: p.in + (p.required ? ", required" : "") });
      inputs[p.name + "@" + p.in] = input;
      return el("div", { class: "param" }, el("code", {}, p.name), input);
    });
    const jsonBody = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
    const bodyArea = jsonBody ? el("textarea", {}) : null;
    if (bodyArea) bodyArea.value = JSON.stringify(example(doc, jsonBody.schema, 0), null, 2);
    const statusLine = el("span", { class: "status" });
    const output = el("pre", {}, "");
    const send = el("button", { type: "button" }, "Send");
    send.addEventListener("click", async () => {
      let url = path;
      const query = new URLSearchParams();
      const headers = {};
      for (const p of params) {
        const value = inputs[p.name + "@" + p.in].value;
        if (!value) continue;
        if (p.in === "path") url = url.replace("{" + p.name + "}", encodeURIComponent(value));
        else if (p.in === "query") query.append(p.name, value);
        else if (p.in === "header") headers[p.name] = value;
      }
      const token = document.getElementById("token").value.trim();
      if (token) headers["authorization"] = "Bearer " + token;
      const init = { method: method.toUpperCase(), headers };
      if (bodyArea) { headers["content-type"] = "application/json"; init.body = bodyArea.value; }
      const qs = query.toString();
      statusLine.textContent = "…";
      try {
        const response = await fetch(url + (qs ? "?" + qs : ""), init);
        const text = await response.text();
        statusLine.textContent = response.status + " " + response.statusText;
        try { output.textContent = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { output.textContent = text; }
      } catch (error) {
        statusLine.textContent = "request failed";
        output.textContent = String(error);
      }
    });
    const responses = Object.entries(op.responses || {}).map(([code, r]) => el("li", {}, el("code", {}, code), " ", (resolve(doc, r) || {}).description || ""));
    const body = el("div", { class: "body" },
      op.description ? el("p", {}, op.description) : "",
      paramRows.length ? el("div", {}, el("strong", {}, "Parameters"), ...paramRows) : "",
      bodyArea ? el("div", {}, el("strong", {}, "JSON body"), bodyArea) : "",
      el("div", {}, el("strong", {}, "Responses"), el("ul", {}, ...responses)),
      el("div", {}, send, statusLine), output);
    const details = el("details", {},
      el("summary", {}, el("span", { class: "method " + method }, method.toUpperCase()), el("span", { class: "path" }, path), el("span", { class: "summary" }, op.summary || "")),
      body);
    details.dataset.search = (method + " " + path + " " + (op.summary || "")).toLowerCase();
    return details;
  }

  function render(doc) {
    document.getElementById("version").textContent = "v" + doc.info.version + " · OpenAPI " + doc.openapi;
    document.getElementById("description").textContent = doc.info.description || "";
    const groups = {};
    for (const [path, item] of Object.entries(doc.paths || {})) {
      for (const method of ["get", "post", "put", "patch", "delete"]) {
        if (!item[method]) continue;
        const tag = (item[method].tags || ["other"])[0];
        (groups[tag] = groups[tag] || []).push(operation(doc, path, method, item[method]));
      }
    }
    const ops = document.getElementById("ops");
    ops.textContent = "";
    for (const tag of Object.keys(groups).sort()) ops.append(el("h2", {}, tag), ...groups[tag]);
    document.getElementById("filter").addEventListener("input", (event) => {
      const needle = event.target.value.toLowerCase();
      for (const node of ops.querySelectorAll("details")) node.style.display = node.dataset.search.includes(needle) ? "" : "none";
    });
  }

  fetch("/api/v1/openapi.json")
    .then((response) => response.json())
    .then(render)
    .catch((error) => { document.getElementById("ops").textContent = "Could not load the OpenAPI document: " + error; });
})();
