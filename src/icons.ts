import { LabIcon } from '@jupyterlab/ui-components';

import cvatTrainSvg from '../style/icons/cvat-train.svg';

/** The sidebar icon of the CVAT Train panel. */
export const cvatTrainIcon = new LabIcon({
  name: 'jupyter-cvat-train:icon',
  svgstr: cvatTrainSvg
});
