// healctl --version: the package's version, read where kloros_build_info reads it too.
export { VERSION } from '../../config/package-version.js';
