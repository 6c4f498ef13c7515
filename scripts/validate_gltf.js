// node scripts/validate_gltf.js FILE.glb...: the Khronos glTF-Validator (npm gltf-validator, found
// through NODE_PATH); prints each file's errors and warnings and exits 1 if there is any.
const validator = require('gltf-validator');
const fs = require('fs');
(async () => {
  let bad = 0;
  for (const f of process.argv.slice(2)) {
    const report = await validator.validateBytes(new Uint8Array(fs.readFileSync(f)));
    const i = report.issues;
    console.log(`${f}: ${i.numErrors} errors, ${i.numWarnings} warnings, ${i.numInfos} infos`);
    for (const m of i.messages) if (m.severity <= 1) console.log(`  ${m.severity === 0 ? 'error' : 'warning'} ${m.code} ${m.pointer || ''}: ${m.message}`);
    if (i.numErrors + i.numWarnings > 0) bad = 1;
  }
  process.exit(bad);
})();
