// Validates Prometheus Operator objects (monitoring.coreos.com/v1 ServiceMonitor, PrometheusRule, ...) against the
// schemas of @kubernetes-models/prometheus-operator, which are generated from prometheus-operator's API types, the
// same definitions (and kubebuilder validation markers: required fields, patterns, minimum lengths) its CRDs'
// openAPIV3Schema is generated from. Two passes, because the JSON-schema validators accept unknown fields (the API
// server would silently prune a misspelt `anotations`):
//   1. the package's JSON-schema validator (`model.validate()`): types, required fields, patterns, enums;
//   2. the package's TypeScript interfaces, with tsc's excess-property check: no field the CRD does not define.
//
// Usage: node validate-crds.mjs FILE.json   (FILE: a JSON array of objects; tests/it/deploy_tools.rs writes it
// from `kubectl kustomize deploy/kubernetes`). Prints one line per object; exits 1 when any object fails.
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { execFileSync } from "node:child_process";

const here = dirname(fileURLToPath(import.meta.url));
const objects = JSON.parse(readFileSync(process.argv[2], "utf8"));
const pkg = "@kubernetes-models/prometheus-operator";
let failed = 0;

const checked = [];
for (const [i, obj] of objects.entries()) {
  const [group, version] = String(obj.apiVersion).split("/");
  const name = `${obj.kind}/${obj.metadata?.name}`;
  if (group !== "monitoring.coreos.com") {
    console.log(`SKIP ${name}: ${obj.apiVersion} is not a Prometheus Operator API`);
    continue;
  }
  let Model;
  try {
    Model = (await import(`${pkg}/${group}/${version}/${obj.kind}`))[obj.kind];
  } catch (e) {
    console.log(`FAIL ${name}: no schema for ${obj.apiVersion} ${obj.kind} in ${pkg}: ${e.message}`);
    failed++;
    continue;
  }
  try {
    new Model(obj).validate();
    checked.push({ i, obj, name, group, version });
  } catch (e) {
    console.log(`FAIL ${name}: ${e.message}`);
    failed++;
  }
}

// Pass 2: each object as a typed literal; tsc reports any property its interface does not declare.
if (checked.length > 0) {
  // Beside node_modules, so that tsc resolves the package from the file.
  const dir = mkdtempSync(join(here, ".objects-"));
  const lines = [];
  for (const { i, obj, group, version } of checked) {
    lines.push(`import type { I${obj.kind} as T${i} } from "${pkg}/${group}/${version}/${obj.kind}";`);
    lines.push(`export const o${i}: T${i} = ${JSON.stringify(obj, null, 2)};`);
  }
  const file = join(dir, "objects.ts");
  writeFileSync(file, lines.join("\n") + "\n");
  const tsc = join(here, "node_modules", "typescript", "bin", "tsc");
  try {
    execFileSync(
      process.execPath,
      [tsc, "--noEmit", "--strict", "--skipLibCheck", "--module", "nodenext", "--moduleResolution", "nodenext",
        "--target", "es2022", file],
      { cwd: here, encoding: "utf8" },
    );
  } catch (e) {
    const out = `${e.stdout ?? ""}${e.stderr ?? ""}`.trim();
    for (const { name } of checked) console.log(`FAIL ${name}: a field its CRD does not define (tsc):`);
    console.log(out);
    failed += checked.length;
    checked.length = 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
for (const { name, obj } of checked) console.log(`PASS ${name} against ${pkg} ${obj.apiVersion} ${obj.kind}`);
process.exit(failed > 0 ? 1 : 0);
