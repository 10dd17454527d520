/**
 * A sidebar section: a heading that folds it (a button, keyboard reachable, with
 * aria-expanded) and its content in the normal flow, so the panel scrolls as one column
 * and no section is squeezed into a fixed share of the height.
 */
import { caretDownIcon, ReactWidget } from '@jupyterlab/ui-components';
import React from 'react';

export abstract class Section extends ReactWidget {
  constructor(label: string, id: string) {
    super();
    this.id = id;
    this.title.label = label;
    this.addClass('jp-CvatTrain-sectionWidget');
  }

  get expanded(): boolean {
    return this._expanded;
  }

  /** Unfold the section and scroll it into view. */
  expand(): void {
    this._expanded = true;
    this.update();
    requestAnimationFrame(() =>
      this.node.scrollIntoView?.({ block: 'start', behavior: 'smooth' })
    );
  }

  protected abstract renderBody(): JSX.Element;

  protected render(): JSX.Element {
    const bodyId = `${this.id}-body`;
    return (
      <>
        <h3 className="jp-CvatTrain-sectionTitle">
          <button
            className={
              'jp-CvatTrain-sectionToggle' +
              (this._expanded ? ' jp-mod-expanded' : '')
            }
            aria-expanded={this._expanded}
            aria-controls={bodyId}
            onClick={() => {
              this._expanded = !this._expanded;
              this.update();
            }}
          >
            <caretDownIcon.react tag="span" className="jp-CvatTrain-caret" />
            {this.title.label}
          </button>
        </h3>
        <div id={bodyId} hidden={!this._expanded}>
          {this.renderBody()}
        </div>
      </>
    );
  }

  private _expanded = true;
}
