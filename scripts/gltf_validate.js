// Validate a .glb/.gltf with the Khronos glTF validator (npm gltf-validator) and print its report as JSON.
//   NODE_PATH=.cache/gltf-validator/node_modules node scripts/gltf_validate.js FILE
// Exit code 0: no errors; 1: errors in the file; 2: the file could not be read or validated.
const fs = require("fs");
const path = require("path");
const validator = require("gltf-validator");

const file = process.argv[2];
if (!file) {
  console.error("usage: node scripts/gltf_validate.js FILE.glb|FILE.gltf");
  process.exit(2);
}
const full = path.resolve(file);
validator.validateBytes(new Uint8Array(fs.readFileSync(full)), {
  uri: path.basename(full),
  maxIssues: 100,
  externalResourceFunction: (uri) => new Promise((resolve, reject) => {
    fs.readFile(path.resolve(path.dirname(full), decodeURIComponent(uri)), (error, data) => {
      if (error) reject(error.toString()); else resolve(data);
    });
  }),
}).then((report) => {
  console.log(JSON.stringify(report, null, 1));
  process.exit(report.issues.numErrors > 0 ? 1 : 0);
}, (error) => {
  console.error(String(error));
  process.exit(2);
});
