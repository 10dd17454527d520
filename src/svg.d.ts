// SVG files are bundled as strings (webpack asset/source in @jupyterlab/builder).
declare module '*.svg' {
  const value: string;
  export default value;
}
