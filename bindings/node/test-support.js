'use strict';
// For the tests (not part of the package): which built package they load.
// LARDER_NODE_PACKAGE (absolute, or relative to the current directory),
// else the repository's build-release/node when it has been built, else
// this directory (which holds an addon only if one was copied in).
const fs = require('node:fs');
const path = require('node:path');

const own = __dirname;
const built = path.join(own, '..', '..', 'build-release', 'node');

exports.pkg = process.env.LARDER_NODE_PACKAGE
  ? path.resolve(process.env.LARDER_NODE_PACKAGE)
  : fs.existsSync(path.join(built, 'larder.node')) ? built : own;
