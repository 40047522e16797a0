import * as core from '@actions/core'
import { errorMessage } from '../core/errors.js'
import { cleanUpScratch } from './scratch.js'

// action.yml runs this after the job with `post-if: always()`: after a failure or a cancel too.
// Nothing here fails the job: a cleanup that cannot finish says what it left behind.
try {
  await cleanUpScratch({
    info: (message) => core.info(message),
    warn: (message) => core.warning(message),
    debug: (message) => core.debug(message),
  })
} catch (error) {
  core.warning(`kluis could not clean up after itself: ${errorMessage(error)}`)
}
