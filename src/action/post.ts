import * as core from '@actions/core'
import { errorMessage } from '../core/errors.js'
import { removeScratch } from './scratch.js'

// action.yml runs this after the job with `post-if: always()`: after a failure or a cancel too.
try {
  removeScratch()
} catch (error) {
  core.warning(`kluis could not remove its temporary files: ${errorMessage(error)}`)
}
